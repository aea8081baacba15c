"""A callback that reports zero-shot accuracy on a validation set during `fit`."""

import numpy as np

from keras_mm.api_export import keras_mm_export
from keras_mm.metrics._encode import (
    EvaluationCallback,
    check_text_inputs,
    encode,
    reshape_text,
)
from keras_mm.metrics.zero_shot_accuracy import zero_shot_accuracy
from keras_mm.metrics.zero_shot_classifier import zero_shot_classifier


@keras_mm_export("keras_mm.metrics.ZeroShotCallback")
class ZeroShotCallback(EvaluationCallback):
    """Zero-shot top-K accuracy on validation images, written into `logs`.

    At the end of every `frequency`-th epoch the model embeds the class prompts
    (`model.encode_text`), averages them per class (`zero_shot_classifier`),
    embeds the images (`model.encode_image`), and scores `image_embeddings @
    class_embeddings.T` with `zero_shot_accuracy`. The results go into `logs` as
    `f"{prefix}top{K}"` (by default `"val_zero_shot_top1"`, `"val_zero_shot_top5"`),
    so the progress bar, `History`, `CSVLogger`, `EarlyStopping` and
    `ModelCheckpoint(monitor=...)` see them (place this callback before those).

    The model must have `encode_image(images)` and `encode_text(text)` methods
    returning embeddings (L2-normalised, as CLIP's); `text` is the dict of prompt
    arrays (`"token_ids"`, `"padding_mask"`) or the token id array.

    Args:
        images: `(N, H, W, C)` validation images.
        labels: `(N,)` int class ids.
        class_prompts: dict with `"token_ids"` (and `"padding_mask"`) of shape
            `(num_classes, num_prompts, T)` or `(num_classes, T)` (as
            `keras_mm.data.make_class_prompts` and `load_shapes(...)
            ["class_prompts"]` give), or such a token id array.
        ks: int or list of int.
        batch_size: int. Batch size of the encoding calls.
        frequency: int. Evaluate every `frequency` epochs (and never in between).
        prefix: str. Prefix of the log keys.

    Example:

    ```python
    data = keras_mm.data.load_shapes()
    callback = ZeroShotCallback(
        data["test"]["inputs"]["images"], data["test"]["labels"],
        data["class_prompts"])
    model.fit(dataset, epochs=5, callbacks=[callback])
    ```
    """

    def __init__(
        self,
        images,
        labels,
        class_prompts,
        ks=(1, 5),
        batch_size=256,
        frequency=1,
        prefix="val_zero_shot_",
    ):
        super().__init__()
        self.images = np.asarray(images)
        self.labels = np.asarray(labels)
        if self.labels.shape != (len(self.images),):
            raise ValueError(
                f"`labels` must have shape ({len(self.images)},), one per image. "
                f"Received: labels shape={self.labels.shape}"
            )
        self.prompts, shape = check_text_inputs(class_prompts, "class_prompts")
        if len(shape) not in (2, 3):
            raise ValueError(
                "`class_prompts` token ids must be (num_classes, num_prompts, T) or "
                f"(num_classes, T). Received: shape={shape}"
            )
        self.prompt_shape = shape if len(shape) == 3 else (shape[0], 1, shape[1])
        self.set_schedule(ks, batch_size, frequency, prefix)

    def evaluate(self):
        """Compute the metrics now; returns the dict that goes into `logs`."""
        c, p, t = self.prompt_shape
        flat = reshape_text(self.prompts, (c * p, t))
        text = encode(self.model.encode_text, flat, self.batch_size)
        classes = zero_shot_classifier(text.reshape(c, p, -1))
        images = encode(self.model.encode_image, self.images, self.batch_size)
        scores = zero_shot_accuracy(images @ classes.T, self.labels, self.ks)
        return {f"{self.prefix}{k}": v for k, v in scores.items()}
