import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.layers._spec import traced_output_spec
from keras_mm.utils.input_checks import (
    check_built_features,
    check_modality_shapes,
    modality_mask,
)


@keras_mm_export("keras_mm.layers.GatedFusion")
class GatedFusion(keras.layers.Layer):
    """Gated fusion: each modality passes through its own sigmoid gate, then sum.

    Implements seed section 4.3.2 generalised from two to `n >= 2` modalities,

        h = sum_i z_i * sigmoid(W_i z_i + b_i),

    where `W_i` is stored as a `(d, d)` kernel applied as `z_i @ W_i` (Keras'
    convention). `get_weights()` returns `[W_1, b_1, W_2, b_2, ...]`, in the order of
    the input list.

    Args:
        kernel_initializer: initializer for every `W_i`.
        bias_initializer: initializer for every `b_i`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list of `n >= 2` tensors of shape `(batch, d)`.
        mask: optional `(batch, n)` tensor; a modality marked 0/False contributes
            nothing to `h`.

    Returns:
        `h` of shape `(batch, d)`.

    Example:

    >>> import numpy as np
    >>> layer = GatedFusion()
    >>> tuple(layer([np.ones((2, 8)), np.ones((2, 8))]).shape)
    (2, 8)

    Reference:
        Seed tutorial section 4.3.2; Arevalo et al., 2017 (gated multimodal units).
    """

    def __init__(
        self, kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs
    ):
        super().__init__(**kwargs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def _check(self, inputs):
        return check_modality_shapes(self.__class__.__name__, inputs, ranks=(2,))

    def build(self, input_shape):
        shapes = self._check(input_shape)
        d = shapes[0][-1]
        self.gate_kernels, self.gate_biases = [], []
        for i in range(len(shapes)):
            self.gate_kernels.append(
                self.add_weight(
                    name=f"gate_kernel_{i}",
                    shape=(d, d),
                    initializer=self.kernel_initializer,
                )
            )
            self.gate_biases.append(
                self.add_weight(
                    name=f"gate_bias_{i}", shape=(d,), initializer=self.bias_initializer
                )
            )

    def call(self, inputs, mask=None):
        shapes = self._check(inputs)
        n = len(shapes)
        if len(self.gate_kernels) != n:
            raise ValueError(
                f"{self.__class__.__name__}: this layer was built for "
                f"{len(self.gate_kernels)} modalities. Received: {n} inputs"
            )
        kernels = [k.shape[0] for k in self.gate_kernels]
        check_built_features(self.__class__.__name__, shapes, kernels)
        mask = modality_mask(self.__class__.__name__, mask, inputs, inputs[0].dtype)
        h = 0
        for i, z in enumerate(inputs):
            gate = ops.sigmoid(
                ops.matmul(z, self.gate_kernels[i]) + self.gate_biases[i]
            )
            term = z * gate
            if mask is not None:
                term = term * mask[:, i : i + 1]
            h = h + term
        return h

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return self._check(input_shape)[0]

    def compute_output_spec(self, *args, **kwargs):
        return traced_output_spec(self, *args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
