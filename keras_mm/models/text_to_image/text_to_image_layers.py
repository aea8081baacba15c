"""The decoder-only transformer of `TextToImage`, with a key/value cache."""

import keras
from keras import ops

from keras_mm.models.model_utils import check_positive_int

# Large negative logit for masked positions (finite: no NaN from inf - inf).
_NEG = -1.0e9


@keras.saving.register_keras_serializable(package="keras_mm")
class CausalTransformer(keras.layers.Layer):
    """Token + position embeddings, pre-LN causal self-attention blocks, logits.

    Each block is `x += W_o attn(LN(x))`, `x += W_2 gelu(W_1 LN(x))` (GPT-2's
    pre-LN layout, Radford et al., 2019) with a causal mask: position `t`
    attends to positions `<= t`. Attention is written out with `keras.ops` so
    that decoding can reuse a key/value cache: `prefill` runs a prompt and
    returns the keys and values of every layer, `step` runs one new token
    against them. Both give the logits of the full (uncached) `call` at the
    same positions.

    Args:
        vocabulary_size: int. Token ids in `[0, vocabulary_size)`.
        sequence_length: int. Longest sequence (position embeddings, cache).
        hidden_dim: int. Divisible by `num_heads`.
        num_layers: int.
        num_heads: int.
        intermediate_dim: int. Feed-forward width.
        dropout: float in [0, 1). On the attention output and feed-forward.
        **kwargs: base layer arguments.

    Call arguments:
        token_ids: `(batch, T)` int, `T <= sequence_length`.
        training: bool.

    Returns:
        `(batch, T, vocabulary_size)` float32 logits (`t` predicts token `t+1`).
    """

    def __init__(
        self,
        vocabulary_size,
        sequence_length,
        hidden_dim,
        num_layers,
        num_heads,
        intermediate_dim,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for arg, value in (
            ("vocabulary_size", vocabulary_size),
            ("sequence_length", sequence_length),
            ("hidden_dim", hidden_dim),
            ("num_layers", num_layers),
            ("num_heads", num_heads),
            ("intermediate_dim", intermediate_dim),
        ):
            check_positive_int(arg, value)
        if hidden_dim % num_heads:
            raise ValueError(
                "`hidden_dim` must be divisible by `num_heads`. Received: "
                f"hidden_dim={hidden_dim}, num_heads={num_heads}"
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: {dropout!r}")
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = float(dropout)
        self.head_dim = hidden_dim // num_heads
        dtype = self.dtype_policy

        def dense(units, name, activation=None):
            return keras.layers.Dense(
                units, activation=activation, dtype=dtype, name=name
            )

        def norm(name):
            return keras.layers.LayerNormalization(epsilon=1e-5, dtype=dtype, name=name)

        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, hidden_dim, dtype=dtype, name="token_embedding"
        )
        self.position_embedding = keras.layers.Embedding(
            sequence_length, hidden_dim, dtype=dtype, name="position_embedding"
        )
        # One list per kind of sublayer (index = block), tracked by Keras.
        self.norm1 = [norm(f"block{i}_norm1") for i in range(num_layers)]
        self.qkv = [dense(3 * hidden_dim, f"block{i}_qkv") for i in range(num_layers)]
        self.attention_out = [
            dense(hidden_dim, f"block{i}_out") for i in range(num_layers)
        ]
        self.norm2 = [norm(f"block{i}_norm2") for i in range(num_layers)]
        self.ff1 = [
            dense(intermediate_dim, f"block{i}_ff1", "gelu") for i in range(num_layers)
        ]
        self.ff2 = [dense(hidden_dim, f"block{i}_ff2") for i in range(num_layers)]
        self.final_norm = norm("final_norm")
        self.head = dense(vocabulary_size, "head")
        self.drop = keras.layers.Dropout(self.dropout, dtype=dtype, name="dropout")

    def build(self, input_shape=None):
        d = self.hidden_dim
        self.token_embedding.build((None, None))
        self.position_embedding.build((None, None))
        for i in range(self.num_layers):
            for layer in (self.norm1, self.qkv, self.attention_out, self.norm2):
                layer[i].build((None, None, d))
            self.ff1[i].build((None, None, d))
            self.ff2[i].build((None, None, self.intermediate_dim))
        self.final_norm.build((None, None, d))
        self.head.build((None, None, d))
        self.built = True

    # ----------------------------------------------------------------- pieces
    def _embed(self, token_ids, start):
        length = ops.shape(token_ids)[1]
        positions = ops.arange(length, dtype="int32") + ops.cast(start, "int32")
        x = self.token_embedding(ops.cast(token_ids, "int32"))
        return x + self.position_embedding(positions)[None]

    def _heads(self, x):
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (batch, length, self.num_heads, self.head_dim))
        return ops.transpose(x, (0, 2, 1, 3))  # (batch, heads, T, head_dim)

    def _qkv(self, i, x):
        q, k, v = ops.split(self.qkv[i](self.norm1[i](x)), 3, axis=-1)
        return self._heads(q), self._heads(k), self._heads(v)

    def _attend(self, q, k, v, query_positions, key_positions):
        scale = 1.0 / float(self.head_dim) ** 0.5
        scores = ops.einsum(
            "bhqd,bhkd->bhqk", ops.cast(q, "float32"), ops.cast(k, "float32")
        )
        allowed = ops.less_equal(key_positions[None, :], query_positions[:, None])
        scores = ops.where(allowed[None, None], scores * scale, _NEG)
        weights = ops.softmax(scores, axis=-1)
        out = ops.einsum("bhqk,bhkd->bhqd", weights, ops.cast(v, "float32"))
        out = ops.transpose(ops.cast(out, self.compute_dtype), (0, 2, 1, 3))
        batch, length = ops.shape(out)[0], ops.shape(out)[1]
        return ops.reshape(out, (batch, length, self.hidden_dim))

    def _finish_block(self, i, x, attended, training):
        x = x + self.drop(self.attention_out[i](attended), training=training)
        h = self.ff2[i](self.ff1[i](self.norm2[i](x)))
        return x + self.drop(h, training=training)

    def _logits(self, x):
        return ops.cast(self.head(self.final_norm(x)), "float32")

    # ------------------------------------------------------------------- call
    def call(self, token_ids, training=False):
        x = self._embed(token_ids, 0)
        positions = ops.arange(ops.shape(token_ids)[1], dtype="int32")
        for block in range(self.num_layers):
            q, k, v = self._qkv(block, x)
            x = self._finish_block(
                block, x, self._attend(q, k, v, positions, positions), training
            )
        return self._logits(x)

    def prefill(self, token_ids):
        """Logits of a prompt and the key/value cache after it.

        Returns:
            `(logits, cache)`: logits `(batch, P, vocabulary_size)` and a list
            with one `(keys, values)` pair per layer, each
            `(batch, num_heads, sequence_length, head_dim)`, zero after `P`.
        """
        length = token_ids.shape[1]
        x = self._embed(token_ids, 0)
        positions = ops.arange(length, dtype="int32")
        pad = [[0, 0], [0, 0], [0, self.sequence_length - length], [0, 0]]
        cache = []
        for block in range(self.num_layers):
            q, k, v = self._qkv(block, x)
            x = self._finish_block(
                block, x, self._attend(q, k, v, positions, positions), False
            )
            cache.append((ops.pad(k, pad), ops.pad(v, pad)))
        return self._logits(x), cache

    def step(self, token_ids, index, cache):
        """One token `(batch, 1)` at position `index` (a scalar) with `cache`.

        Returns `(logits (batch, vocabulary_size), updated cache)`.
        """
        index = ops.cast(index, "int32")
        x = self._embed(token_ids, index)
        query = ops.reshape(index, (1,))
        keys_at = ops.arange(self.sequence_length, dtype="int32")
        new_cache = []
        zero = ops.zeros((), "int32")
        for block, (k_cache, v_cache) in enumerate(cache):
            q, k, v = self._qkv(block, x)
            start = [zero, zero, index, zero]
            k_cache = ops.slice_update(k_cache, start, ops.cast(k, k_cache.dtype))
            v_cache = ops.slice_update(v_cache, start, ops.cast(v, v_cache.dtype))
            x = self._finish_block(
                block, x, self._attend(q, k_cache, v_cache, query, keys_at), False
            )
            new_cache.append((k_cache, v_cache))
        return self._logits(x)[:, 0], new_cache

    def compute_output_spec(self, token_ids, training=False):
        shape = tuple(token_ids.shape) + (self.vocabulary_size,)
        return keras.KerasTensor(shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
            }
        )
        return config
