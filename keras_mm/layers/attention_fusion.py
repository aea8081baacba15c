import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.layers._spec import traced_output_spec
from keras_mm.utils.input_checks import (
    check_built_features,
    check_mask_shape,
    check_modality_shapes,
)


@keras_mm_export("keras_mm.layers.AttentionFusion")
class AttentionFusion(keras.layers.Layer):
    """Attention fusion: a softmax-weighted sum of modality features.

    Implements seed section 4.3.1,

        h = sum_i alpha_i z_i,  alpha = softmax(e),  e_i = v^T tanh(W z_i + b),

    with `W` stored as `kernel` `(d, units)` (Keras' `z @ kernel` convention), `b`
    as `bias` `(units,)` and `v` as `score_vector` `(units,)`. The softmax runs in
    float32 whatever the compute dtype.

    Inputs are a list of `n >= 2` tensors. With vectors `(batch, d)` the layer
    attends over the `n` modalities. With token sequences `(batch, T_i, d)` it
    attends over all `sum_i T_i` tokens of all modalities at once and respects Keras
    padding masks: this is the corrected form of the seed's listing 5.3.2, whose
    softmax runs over an axis of size 1 and so never attends.

    A masked (missing) modality or padding token gets an attention weight of
    exactly 0; a row whose entries are all masked fuses to zeros.

    Args:
        units: int. Size of the hidden scoring space (rows of `W`).
        kernel_initializer: initializer for `kernel` and `score_vector`.
        bias_initializer: initializer for `bias`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list of `n` tensors, all `(batch, d)` or all `(batch, T_i, d)`.
        mask: optional. A `(batch, n)` tensor marking present modalities (1/True)
            in either mode, or a list of `n` per-input masks as Keras propagates
            them (`(batch,)` for vectors, `(batch, T_i)` for sequences; `None`
            entries mean "all present").
        return_attention_scores: bool. If True, also return the weights `alpha`,
            `(batch, n)` for vectors or `(batch, sum_i T_i)` for sequences.

    Returns:
        `h` of shape `(batch, d)`, or `(h, alpha)`.

    Example:

    >>> import numpy as np
    >>> layer = AttentionFusion(units=4)
    >>> z_v, z_t = np.ones((2, 8)), np.zeros((2, 8))
    >>> h, alpha = layer([z_v, z_t], return_attention_scores=True)
    >>> tuple(h.shape), tuple(alpha.shape)
    ((2, 8), (2, 2))

    Reference:
        Seed tutorial section 4.3.1; Bahdanau et al., 2015 (additive attention).
    """

    def __init__(
        self,
        units,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(
                f"`units` must be a positive integer. Received: units={units!r}"
            )
        self.units = units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def _check(self, inputs):
        name = self.__class__.__name__
        shapes = check_modality_shapes(name, inputs, ranks=(2, 3))
        if self.built:
            check_built_features(name, shapes, [self.kernel.shape[0]] * len(shapes))
        return shapes

    def build(self, input_shape):
        shapes = self._check(input_shape)
        d = shapes[0][-1]
        self.kernel = self.add_weight(
            name="kernel", shape=(d, self.units), initializer=self.kernel_initializer
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.units,), initializer=self.bias_initializer
        )
        self.score_vector = self.add_weight(
            name="score_vector",
            shape=(self.units,),
            initializer=self.kernel_initializer,
        )

    def _token_mask(self, mask, shapes, batch_size):
        """Return a float32 `(batch, num_tokens)` presence mask, or None."""
        n = len(shapes)
        name = self.__class__.__name__
        sequence = len(shapes[0]) == 3
        lengths = [s[1] for s in shapes] if sequence else [1] * n
        if mask is None:
            return None
        if isinstance(mask, (list, tuple)):
            if len(mask) != n:
                raise ValueError(
                    f"{name}: a list `mask` must hold one entry per modality "
                    f"({n}). Received: {len(mask)} entries"
                )
            if all(m is None for m in mask):
                return None
            parts = []
            for i, (m, t) in enumerate(zip(mask, lengths)):
                expected = (shapes[i][0], t) if sequence else (shapes[i][0],)
                if m is None:
                    m = ops.ones((batch_size,) + expected[1:], dtype="float32")
                check_mask_shape(name, m, expected, arg=f"mask[{i}]")
                m = ops.cast(m, "float32")
                parts.append(m if sequence else ops.expand_dims(m, -1))
            return ops.concatenate(parts, axis=1)
        check_mask_shape(name, mask, (shapes[0][0], n))
        mask = ops.cast(mask, "float32")
        if not sequence:
            return mask
        pieces = [
            ops.repeat(mask[:, i : i + 1], t, axis=1) for i, t in enumerate(lengths)
        ]
        return ops.concatenate(pieces, axis=1)

    def call(self, inputs, mask=None, return_attention_scores=False):
        shapes = self._check(inputs)
        if len(shapes[0]) == 2:
            z = ops.stack(inputs, axis=1)  # (batch, n, d)
        else:
            z = ops.concatenate(inputs, axis=1)  # (batch, sum T_i, d)
        hidden = ops.tanh(ops.matmul(z, self.kernel) + self.bias)
        scores = ops.cast(ops.matmul(hidden, self.score_vector), "float32")
        token_mask = self._token_mask(mask, shapes, ops.shape(z)[0])
        if token_mask is None:
            alpha = ops.softmax(scores, axis=-1)
        else:
            present = token_mask > 0
            fill = ops.stop_gradient(ops.min(scores)) - 1.0
            scores = ops.where(present, scores, fill)
            scores = scores - ops.max(scores, axis=-1, keepdims=True)
            weights = ops.exp(scores) * token_mask
            total = ops.sum(weights, axis=-1, keepdims=True)
            alpha = weights / ops.maximum(total, 1e-30)
        alpha = ops.cast(alpha, z.dtype)
        h = ops.sum(ops.expand_dims(alpha, -1) * z, axis=1)
        if return_attention_scores:
            return h, alpha
        return h

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        shapes = self._check(input_shape)
        return (shapes[0][0], shapes[0][-1])

    def compute_output_spec(self, *args, **kwargs):
        return traced_output_spec(self, *args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
