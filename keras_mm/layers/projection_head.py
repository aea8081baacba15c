import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.utils.input_checks import check_float


@keras_mm_export("keras_mm.layers.ProjectionHead")
class ProjectionHead(keras.layers.Layer):
    """Projects an encoder output into the shared multimodal embedding space.

    `Dense(output_dim)`, optionally preceded by `Dense(hidden_dim, gelu)`, then
    (by default) L2 normalisation with an epsilon, so that dot products of the
    outputs are cosine similarities as CLIP uses them (seed sections 3.2.1, 4.1.2):

        p = W_2 gelu(W_1 x + b_1) + b_2,    out = p / max(||p||_2, epsilon).

    Args:
        output_dim: int. Size of the shared embedding space.
        hidden_dim: int or None. Width of an optional hidden layer.
        normalize: bool. Whether to L2-normalise the output.
        epsilon: float. Lower bound on the norm in the normalisation.
        bias_initializer: initializer of the output bias (default zeros). A
            random one keeps a zero input away from the normalisation's
            singular point `p = 0` (gradient `1 / epsilon` there).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor `(..., d)`.

    Returns:
        Tensor `(..., output_dim)`; unit-norm rows when `normalize=True`.

    Example:

    >>> import numpy as np
    >>> head = ProjectionHead(output_dim=4)
    >>> y = head(np.ones((2, 8)))
    >>> tuple(y.shape)
    (2, 4)

    Reference:
        Radford et al., 2021 (CLIP), section 2.4; seed section 3.2.1.
    """

    def __init__(
        self,
        output_dim,
        hidden_dim=None,
        normalize=True,
        epsilon=1e-6,
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if (
            not isinstance(output_dim, int)
            or isinstance(output_dim, bool)
            or output_dim < 1
        ):
            raise ValueError(
                f"`output_dim` must be a positive integer. Received: "
                f"output_dim={output_dim!r}"
            )
        if hidden_dim is not None and (
            not isinstance(hidden_dim, int)
            or isinstance(hidden_dim, bool)
            or hidden_dim < 1
        ):
            raise ValueError(
                f"`hidden_dim` must be None or a positive integer. Received: "
                f"hidden_dim={hidden_dim!r}"
            )
        self.output_dim = output_dim
        self.hidden_dim = hidden_dim
        self.normalize = bool(normalize)
        self.epsilon = check_float("epsilon", epsilon, 0.0, low_open=True)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True
        self.hidden_dense = None
        if hidden_dim is not None:
            self.hidden_dense = keras.layers.Dense(
                hidden_dim,
                activation="gelu",
                dtype=self.dtype_policy,
                name="hidden_dense",
            )
        self.output_dense = keras.layers.Dense(
            output_dim,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name="output_dense",
        )

    def _check(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 2 or not isinstance(input_shape[-1], int):
            raise ValueError(
                f"{self.__class__.__name__}: `inputs` must have rank >= 2 (batch, "
                f"..., features) with a known feature size. Received: inputs "
                f"shape={input_shape}"
            )
        return input_shape

    def build(self, input_shape):
        shape = self._check(input_shape)
        if self.hidden_dense is not None:
            self.hidden_dense.build(shape)
            shape = shape[:-1] + (self.hidden_dim,)
        self.output_dense.build(shape)

    def call(self, inputs):
        self._check(inputs.shape)
        x = inputs
        if self.hidden_dense is not None:
            x = self.hidden_dense(x)
        x = self.output_dense(x)
        if self.normalize:
            x = ops.cast(x, "float32")
            # Clamp before the rsqrt: ops.normalize clamps after it, which gives a
            # NaN gradient for an exactly-zero vector.
            squared = ops.sum(ops.square(x), axis=-1, keepdims=True)
            x = x * ops.rsqrt(ops.maximum(squared, self.epsilon**2))
            x = ops.cast(x, self.compute_dtype)
        return x

    def compute_output_shape(self, input_shape):
        return self._check(input_shape)[:-1] + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_dim": self.output_dim,
                "hidden_dim": self.hidden_dim,
                "normalize": self.normalize,
                "epsilon": self.epsilon,
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
