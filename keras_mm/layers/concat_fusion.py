import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.layers._spec import traced_output_spec
from keras_mm.utils.input_checks import (
    check_float,
    check_modality_shapes,
    modality_mask,
)


@keras_mm_export("keras_mm.layers.ConcatFusion")
class ConcatFusion(keras.layers.Layer):
    """Concatenation fusion followed by a two-layer MLP.

    Implements seed section 5.3.1: concatenate the modality features, then
    `Dense(hidden_dim, activation)`, dropout, `Dense(output_dim)`:

        h = W_2 act(W_1 [z_1; ...; z_n] + b_1) + b_2.

    Modalities may have different feature sizes. A modality marked missing in
    `mask` is replaced by zeros before the concatenation.

    Args:
        hidden_dim: int. Width of the hidden layer.
        output_dim: int. Width of the output.
        activation: activation of the hidden layer. Defaults to `"relu"`.
        dropout: float in [0, 1). Dropout rate after the hidden layer.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list of `n >= 2` tensors of shape `(batch, d_i)`.
        mask: optional `(batch, n)` tensor; 0/False zeroes that modality.
        training: bool, whether dropout is active.

    Returns:
        Tensor of shape `(batch, output_dim)`.

    Example:

    >>> import numpy as np
    >>> layer = ConcatFusion(hidden_dim=16, output_dim=4)
    >>> tuple(layer([np.ones((2, 8)), np.ones((2, 3))]).shape)
    (2, 4)

    Reference:
        Seed tutorial section 5.3.1.
    """

    def __init__(
        self, hidden_dim, output_dim, activation="relu", dropout=0.0, **kwargs
    ):
        super().__init__(**kwargs)
        for arg, value in (("hidden_dim", hidden_dim), ("output_dim", output_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"`{arg}` must be a positive integer. Received: {arg}={value!r}"
                )
        self.hidden_dim = hidden_dim
        self.output_dim = output_dim
        self.activation = keras.activations.get(activation)
        self.dropout = check_float("dropout", dropout, 0.0, 1.0, high_open=True)
        self.hidden_dense = keras.layers.Dense(
            hidden_dim,
            activation=self.activation,
            dtype=self.dtype_policy,
            name="hidden_dense",
        )
        self.dropout_layer = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="dropout"
        )
        self.output_dense = keras.layers.Dense(
            output_dim, dtype=self.dtype_policy, name="output_dense"
        )

    def _check(self, inputs):
        return check_modality_shapes(
            self.__class__.__name__, inputs, ranks=(2,), same_features=False
        )

    def build(self, input_shape):
        shapes = self._check(input_shape)
        total = sum(s[-1] for s in shapes)
        self.hidden_dense.build((shapes[0][0], total))
        self.output_dense.build((shapes[0][0], self.hidden_dim))

    def call(self, inputs, mask=None, training=None):
        self._check(inputs)
        mask = modality_mask(self.__class__.__name__, mask, inputs, inputs[0].dtype)
        if mask is not None:
            inputs = [z * mask[:, i : i + 1] for i, z in enumerate(inputs)]
        x = ops.concatenate(list(inputs), axis=-1)
        x = self.hidden_dense(x)
        x = self.dropout_layer(x, training=training)
        return self.output_dense(x)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        shapes = self._check(input_shape)
        return (shapes[0][0], self.output_dim)

    def compute_output_spec(self, *args, **kwargs):
        return traced_output_spec(self, *args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "output_dim": self.output_dim,
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
            }
        )
        return config
