import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.layers._spec import traced_output_spec
from keras_mm.utils.input_checks import (
    check_built_features,
    check_float,
    check_mask_shape,
)


@keras_mm_export("keras_mm.layers.CrossModalAttention")
class CrossModalAttention(keras.layers.Layer):
    """Multimodal (cross-modal) attention block: query tokens attend to context.

    Implements seed section 3.3.2 as a pre-LayerNorm transformer block in which the
    tokens of one modality (`query`, e.g. text) attend to the tokens of another
    (`context`, e.g. image patches):

        x = q + MHA(LN_q(q), LN_c(c), LN_c(c))
        y = x + W_2 gelu(W_1 LN_f(x) + b_1) + b_2

    `MHA` is `keras.layers.MultiHeadAttention`; padding in `context` is never
    attended to. The output has the shape of `query` and carries its mask.

    Args:
        num_heads: int. Number of attention heads.
        key_dim: int. Size of each head.
        intermediate_dim: int. Hidden width of the feed-forward sublayer.
        dropout: float in [0, 1). Dropout on attention weights and sublayer outputs.
        layer_norm_epsilon: float. Epsilon of the three LayerNorms.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `(batch, T_q, d)` tokens that are updated.
        context: `(batch, T_c, d_c)` tokens that are attended to.
        query_mask: optional `(batch, T_q)` padding mask of `query`.
        context_mask: optional `(batch, T_c)` padding mask of `context`.
        return_attention_scores: bool. If True, also return the attention
            weights `(batch, num_heads, T_q, T_c)`.
        training: bool, whether dropout is active.

    Returns:
        Tensor shaped like `query`, or `(output, scores)`.

    Example:

    >>> import numpy as np
    >>> block = CrossModalAttention(num_heads=2, key_dim=4, intermediate_dim=16)
    >>> text, image = np.ones((2, 5, 8)), np.ones((2, 9, 6))
    >>> tuple(block(text, image).shape)
    (2, 5, 8)

    Reference:
        Seed tutorial section 3.3.2; Vaswani et al., 2017; Lu et al., 2019
        (ViLBERT co-attention); Xiong et al., 2020 (pre-LN).
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        intermediate_dim,
        dropout=0.0,
        layer_norm_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for arg, value in (
            ("num_heads", num_heads),
            ("key_dim", key_dim),
            ("intermediate_dim", intermediate_dim),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"`{arg}` must be a positive integer. Received: {arg}={value!r}"
                )
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = check_float("dropout", dropout, 0.0, 1.0, high_open=True)
        self.layer_norm_epsilon = check_float(
            "layer_norm_epsilon", layer_norm_epsilon, 0.0, low_open=True
        )
        self.supports_masking = True

        def norm(name):
            return keras.layers.LayerNormalization(
                epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name
            )

        self.query_norm = norm("query_norm")
        self.context_norm = norm("context_norm")
        self.feedforward_norm = norm("feedforward_norm")
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=num_heads,
            key_dim=key_dim,
            dropout=self.dropout,
            dtype=self.dtype_policy,
            name="attention",
        )
        self.attention_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="attention_dropout"
        )
        self.intermediate_dense = keras.layers.Dense(
            intermediate_dim,
            activation="gelu",
            dtype=self.dtype_policy,
            name="intermediate_dense",
        )
        self.output_dense = None  # built once the query width is known
        self.feedforward_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="feedforward_dropout"
        )

    def _check(self, query_shape, context_shape):
        name = self.__class__.__name__
        query_shape, context_shape = tuple(query_shape), tuple(context_shape)
        for arg, shape in (("query", query_shape), ("context", context_shape)):
            if len(shape) != 3 or shape[-1] is None:
                raise ValueError(
                    f"{name}: `{arg}` must be a rank-3 tensor (batch, tokens, "
                    f"features) with a known feature size. Received: {arg} "
                    f"shape={shape}"
                )
        qb, cb = query_shape[0], context_shape[0]
        if qb is not None and cb is not None and qb != cb:
            raise ValueError(
                f"{name}: `query` and `context` must have the same batch size. "
                f"Received: query shape={query_shape}, context shape={context_shape}"
            )
        if self.built:
            for arg, shape, norm in (
                ("query", query_shape, self.query_norm),
                ("context", context_shape, self.context_norm),
            ):
                check_built_features(name, [shape], [norm.gamma.shape[0]], arg=arg)
        return query_shape, context_shape

    def build(self, query_shape, context_shape):
        query_shape, context_shape = self._check(query_shape, context_shape)
        d = query_shape[-1]
        self.query_norm.build(query_shape)
        self.context_norm.build(context_shape)
        self.attention.build(query_shape, context_shape)
        self.feedforward_norm.build(query_shape)
        self.intermediate_dense.build(query_shape)
        self.output_dense = keras.layers.Dense(
            d, dtype=self.dtype_policy, name="output_dense"
        )
        self.output_dense.build(query_shape[:-1] + (self.intermediate_dim,))

    def call(
        self,
        query,
        context,
        query_mask=None,
        context_mask=None,
        return_attention_scores=False,
        training=None,
    ):
        query_shape, context_shape = self._check(query.shape, context.shape)
        name = self.__class__.__name__
        attention_mask = None
        if query_mask is not None:
            check_mask_shape(name, query_mask, query_shape[:2], arg="query_mask")
        if context_mask is not None:
            check_mask_shape(name, context_mask, context_shape[:2], arg="context_mask")
            context_mask = ops.cast(context_mask, "bool")
            attention_mask = ops.repeat(
                ops.expand_dims(context_mask, 1), ops.shape(query)[1], axis=1
            )
        q = self.query_norm(query)
        c = self.context_norm(context)
        attended = self.attention(
            q,
            c,
            attention_mask=attention_mask,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        if return_attention_scores:
            attended, scores = attended
        x = query + self.attention_dropout(attended, training=training)
        y = self.intermediate_dense(self.feedforward_norm(x))
        y = self.feedforward_dropout(self.output_dense(y), training=training)
        output = x + y
        if return_attention_scores:
            return output, scores
        return output

    def compute_mask(self, query, context=None, query_mask=None, context_mask=None):
        return query_mask

    def compute_output_shape(self, query_shape, context_shape):
        query_shape, _ = self._check(query_shape, context_shape)
        return query_shape

    def compute_output_spec(self, *args, **kwargs):
        return traced_output_spec(self, *args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
