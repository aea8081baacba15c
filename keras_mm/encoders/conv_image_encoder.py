import keras

from keras_mm.api_export import keras_mm_export
from keras_mm.encoders.encoder_utils import (
    OUTPUT_MODES,
    BaseEncoder,
    check_choice,
    check_image_shape,
    check_int,
    outputs_for,
    shape_matches,
    unique_name,
)


@keras_mm_export("keras_mm.encoders.ConvImageEncoder")
class ConvImageEncoder(BaseEncoder):
    """A small convolutional (CNN) image encoder.

    Stages of a 3x3 ReLU `Conv2D` and a 2x2 `MaxPooling2D` halve the image until
    its smaller side is at most 8 pixels (at least one stage), then a last 3x3
    ReLU `Conv2D` and a global average pool give one vector per image. The first
    stage has `max(hidden_dim // 2, 8)` filters, the others `hidden_dim`. Built
    from core Keras layers only; on 32x32 images it learns shape words within a
    few epochs on a CPU, where the ViT `ImageEncoder` needs many more. It is the
    default image tower of the `keras-mm` CLI's CLIP.

    Args:
        image_shape: tuple of 3 ints. `(height, width, channels)`, channels last;
            height and width at least 2.
        hidden_dim: int. Filters of the last convolutions, and the output width.
        output_mode: `"pooled"`, `"sequence"` or `"both"` (see Returns).
        name: str or None. Defaults to a unique `"conv_image_encoder"`,
            `"conv_image_encoder_1"`, ...
        dtype: dtype or `keras.DTypePolicy` (e.g. `"mixed_bfloat16"`).
        **kwargs: other `keras.Model` arguments (`trainable`).

    Call arguments:
        inputs: float images `(batch, height, width, channels)` matching
            `image_shape`, or a dict `{"images": images}`. No rescaling happens
            inside.
        training: bool. Unused (the encoder has no dropout).

    Returns:
        `output_mode="pooled"`: `(batch, hidden_dim)`, the mean of the last
        feature map. `"sequence"`: that feature map as tokens in row-major order,
        `(batch, h * w, hidden_dim)` with `h, w` the final grid. `"both"`: a dict
        `{"pooled_output", "sequence_output"}`.

    Example:

    >>> import numpy as np
    >>> encoder = ConvImageEncoder(image_shape=(16, 16, 3), hidden_dim=8)
    >>> tuple(encoder(np.zeros((2, 16, 16, 3))).shape)
    (2, 8)
    >>> tokens = ConvImageEncoder(image_shape=(16, 16, 3), hidden_dim=8,
    ...                           output_mode="sequence")
    >>> tuple(tokens(np.zeros((2, 16, 16, 3))).shape)
    (2, 64, 8)

    Reference:
        LeCun et al., 1998, "Gradient-Based Learning Applied to Document
        Recognition".
    """

    def __init__(
        self,
        image_shape=(32, 32, 3),
        hidden_dim=64,
        output_mode="pooled",
        name=None,
        dtype=None,
        **kwargs,
    ):
        image_shape = check_image_shape(image_shape)
        if min(image_shape[:2]) < 2:
            raise ValueError(
                "The image height and width must be at least 2 (one 2x2 pooling). "
                f"Received: image_shape={image_shape}"
            )
        check_int("hidden_dim", hidden_dim)
        check_choice("output_mode", output_mode, OUTPUT_MODES)
        name = unique_name(name, "conv_image_encoder")

        # === Layers and functional graph, under the encoder's name scope ===
        with keras.name_scope(name):
            images = keras.Input(shape=image_shape, name="images")
            x = images
            filters, size, stage = max(hidden_dim // 2, 8), min(image_shape[:2]), 0
            while True:
                x = keras.layers.Conv2D(
                    filters,
                    3,
                    padding="same",
                    activation="relu",
                    dtype=dtype,
                    name=f"conv_{stage}",
                )(x)
                x = keras.layers.MaxPooling2D(dtype=dtype, name=f"pool_{stage}")(x)
                size //= 2
                stage += 1
                filters = hidden_dim
                if size <= 8:
                    break
            x = keras.layers.Conv2D(
                hidden_dim,
                3,
                padding="same",
                activation="relu",
                dtype=dtype,
                name=f"conv_{stage}",
            )(x)
            pooled = keras.layers.GlobalAveragePooling2D(
                dtype=dtype, name="global_pool"
            )(x)
            sequence = keras.layers.Reshape(
                (x.shape[1] * x.shape[2], hidden_dim), dtype=dtype, name="tokens"
            )(x)
        super().__init__(
            inputs=images,
            outputs=outputs_for(output_mode, pooled, sequence),
            name=name,
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.image_shape = image_shape
        self.hidden_dim = hidden_dim
        self.output_mode = output_mode
        self.num_tokens = sequence.shape[1]

    _input_key = "images"

    def _check_inputs(self, inputs):
        images, shape = self._unpack_input(inputs)
        expected = (None,) + self.image_shape
        if not shape_matches(shape, expected):
            raise self._input_error(
                f"a float tensor of shape {expected} (batch, H, W, C)", images
            )
        return images

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_shape": self.image_shape,
                "hidden_dim": self.hidden_dim,
                "output_mode": self.output_mode,
            }
        )
        return config
