"""A callback that reports image-text retrieval recall@K during `fit`."""

import numpy as np

from keras_mm.api_export import keras_mm_export
from keras_mm.metrics._encode import EvaluationCallback, check_text_inputs, encode
from keras_mm.metrics.retrieval_metrics import retrieval_metrics


@keras_mm_export("keras_mm.metrics.RetrievalCallback")
class RetrievalCallback(EvaluationCallback):
    """Retrieval recall@K and ranks on a validation set, written into `logs`.

    At the end of every `frequency`-th epoch the model embeds the images
    (`model.encode_image`) and the captions (`model.encode_text`) and
    `retrieval_metrics(image_embeddings @ text_embeddings.T, caption_image_index,
    ks)` goes into `logs` with `prefix` (by default `"val_image_to_text_r1"`,
    `"val_text_to_image_r5"`, `"val_image_to_text_median_rank"`, ...), where the
    progress bar, `History`, `EarlyStopping` and `ModelCheckpoint` see it (place
    this callback before those).

    Args:
        images: `(num_images, H, W, C)`, each image once.
        text: dict with `"token_ids"` (and `"padding_mask"`) of shape
            `(num_captions, T)`, or the token id array.
        caption_image_index: `(num_captions,)` int, the image of each caption (a
            reader's `"caption_image_index"`), or None for one caption per image.
        ks: int or list of int.
        batch_size: int. Batch size of the encoding calls.
        frequency: int. Evaluate every `frequency` epochs.
        prefix: str. Prefix of the log keys.
    """

    def __init__(
        self,
        images,
        text,
        caption_image_index=None,
        ks=(1, 5, 10),
        batch_size=256,
        frequency=1,
        prefix="val_",
    ):
        super().__init__()
        self.images = np.asarray(images)
        self.text, shape = check_text_inputs(text, "text")
        if len(shape) != 2:
            raise ValueError(
                f"`text` token ids must be (num_captions, T). Received: shape={shape}"
            )
        if caption_image_index is None and shape[0] != len(self.images):
            raise ValueError(
                "Without `caption_image_index` there must be one caption per image. "
                f"Received: {len(self.images)} images and {shape[0]} captions"
            )
        self.caption_image_index = (
            None if caption_image_index is None else np.asarray(caption_image_index)
        )
        if self.caption_image_index is not None and (
            self.caption_image_index.shape != (shape[0],)
        ):
            raise ValueError(
                f"`caption_image_index` must have shape ({shape[0]},). Received: "
                f"{self.caption_image_index.shape}"
            )
        self.set_schedule(ks, batch_size, frequency, prefix)

    def evaluate(self):
        """Compute the metrics now; returns the dict that goes into `logs`."""
        images = encode(self.model.encode_image, self.images, self.batch_size)
        text = encode(self.model.encode_text, self.text, self.batch_size)
        scores = retrieval_metrics(images @ text.T, self.caption_image_index, self.ks)
        return {f"{self.prefix}{k}": v for k, v in scores.items()}
