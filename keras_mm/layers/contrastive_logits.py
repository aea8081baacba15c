import math

import keras
from keras import ops

from keras_mm.api_export import keras_mm_export


def _positive_float(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = float("nan")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(
            f"`{name}` must be a finite number > 0"
            f"{' or None' if allow_none else ''}. Received: {name}={value!r}"
        )
    return value


@keras_mm_export("keras_mm.layers.ContrastiveLogits")
class ContrastiveLogits(keras.layers.Layer):
    """Similarity head: learnable-temperature image-text logits for CLIP/SigLIP.

    Computes the `(B_image, B_text)` logits of seed section 4.1.2,

        z = min(exp(s), max_scale) * x y^T + b,

    with the learnable log-scale `s` stored as `log_scale` (a scalar initialised
    at `log(init_scale)`) and an optional learnable scalar `bias` `b`. CLIP uses
    `init_scale=1/0.07` and clamps the scale at 100 (`max_scale`); SigLIP uses
    `init_scale=10, init_bias=-10`. Above `max_scale` the scale receives no
    gradient, as in CLIP. Inputs are expected to be L2-normalised embeddings
    (e.g. `keras_mm.layers.ProjectionHead`); the layer does not normalise.

    The matrix product and the output are float32 whatever the compute dtype,
    because the logits feed a softmax/sigmoid loss.

    Args:
        init_scale: float > 0. Initial scale `exp(s)`; CLIP's `1/0.07`.
        max_scale: float > 0 or None. Upper clamp of the scale (None: no clamp).
        init_bias: float or None. Initial value of the learnable bias; None (the
            default) creates no bias.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        image_embeddings: `(B_image, d)` tensor.
        text_embeddings: `(B_text, d)` tensor.

    Returns:
        float32 logits `(B_image, B_text)`; row `i` scores image `i` against every
        text.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> head = ContrastiveLogits()
    >>> z = ops.convert_to_numpy(head(np.eye(3, 4), np.eye(2, 4)))
    >>> tuple(z.shape), round(float(z[0, 0]), 3)
    ((3, 2), 14.286)

    Reference:
        Radford et al., 2021 (CLIP), figure 3; Zhai et al., 2023 (SigLIP),
        algorithm 1; seed sections 3.2.1 and 4.1.2.
    """

    def __init__(self, init_scale=1 / 0.07, max_scale=100.0, init_bias=None, **kwargs):
        super().__init__(**kwargs)
        self.init_scale = _positive_float("init_scale", init_scale)
        self.max_scale = _positive_float("max_scale", max_scale, allow_none=True)
        if init_bias is not None:
            try:
                init_bias = float(init_bias)
            except (TypeError, ValueError):
                init_bias = float("nan")
            if not math.isfinite(init_bias):
                raise ValueError(
                    f"`init_bias` must be a finite number or None. "
                    f"Received: init_bias={init_bias!r}"
                )
        self.init_bias = init_bias

    def _check(self, image_shape, text_shape):
        name = self.__class__.__name__
        image_shape, text_shape = tuple(image_shape), tuple(text_shape)
        received = (
            f"Received: image_embeddings shape={image_shape}, "
            f"text_embeddings shape={text_shape}"
        )
        if len(image_shape) != 2 or len(text_shape) != 2:
            raise ValueError(
                f"{name}: `image_embeddings` and `text_embeddings` must both have "
                f"rank 2, (B_image, d) and (B_text, d). {received}"
            )
        d_i, d_t = image_shape[-1], text_shape[-1]
        if d_i is None or d_t is None or d_i != d_t:
            raise ValueError(
                f"{name}: `image_embeddings` and `text_embeddings` must have the "
                f"same, known embedding size (last dimension). {received}"
            )

    def build(self, image_embeddings_shape, text_embeddings_shape=None):
        if text_embeddings_shape is not None:
            self._check(image_embeddings_shape, text_embeddings_shape)
        self.log_scale = self.add_weight(
            name="log_scale",
            shape=(),
            initializer=keras.initializers.Constant(math.log(self.init_scale)),
            autocast=False,  # keep float32 under mixed precision
        )
        self.bias = None
        if self.init_bias is not None:
            self.bias = self.add_weight(
                name="bias",
                shape=(),
                initializer=keras.initializers.Constant(self.init_bias),
                autocast=False,
            )

    @property
    def scale(self):
        """The (clamped) multiplicative scale `min(exp(s), max_scale)`, float32."""
        scale = ops.exp(ops.cast(self.log_scale, "float32"))
        if self.max_scale is not None:
            scale = ops.minimum(scale, self.max_scale)
        return scale

    def call(self, image_embeddings, text_embeddings):
        self._check(image_embeddings.shape, text_embeddings.shape)
        x = ops.cast(image_embeddings, "float32")
        y = ops.cast(text_embeddings, "float32")
        logits = self.scale * ops.matmul(x, ops.transpose(y))
        if self.bias is not None:
            logits = logits + ops.cast(self.bias, "float32")
        return logits

    def compute_output_shape(self, image_embeddings_shape, text_embeddings_shape):
        self._check(image_embeddings_shape, text_embeddings_shape)
        return (image_embeddings_shape[0], text_embeddings_shape[0])

    def compute_output_spec(self, image_embeddings, text_embeddings):
        shape = self.compute_output_shape(image_embeddings.shape, text_embeddings.shape)
        return keras.KerasTensor(shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "init_scale": self.init_scale,
                "max_scale": self.max_scale,
                "init_bias": self.init_bias,
            }
        )
        return config
