"""The encoders' transformer block (not public API).

keras-hub's pre-LN `TransformerEncoder`, with two changes that keep its variables
(so saved models and converted checkpoints load unchanged):

- A `query_index` call argument that computes a single token's output. An encoder
  whose only output is one pooled token (a ViT class token, a text's first or last
  token) calls its last block this way: every token still gives keys and values,
  but the query, attention output and feed-forward run on one token instead of T.
  The result equals the full block's output at that token. With 2 blocks over 17
  tokens that removes over a third of a tower's matmul work
  (benchmarks/RESULTS.md).
- Self-attention as plain matmuls: the query, key and value kernels of keras'
  `MultiHeadAttention` (`(d, heads, head_dim)` each) are concatenated into one
  `(d, 3 * heads * head_dim)` matrix, so the three projections are one matmul,
  then `ops.dot_product_attention`, then the output kernel as a
  `(heads * head_dim, d)` matmul. `MultiHeadAttention` runs four `einsum`s, which
  torch executes as batched matmuls (slower than one matmul on CPU). The layer
  falls back to `MultiHeadAttention` itself where this does not apply (attention
  dropout, LoRA or quantized projections, a post-LN block).
"""

import keras
from keras import ops
from keras_hub.layers import TransformerEncoder

from keras_mm.encoders.encoder_utils import last_token_index, select_token


class TransformerBlock(TransformerEncoder):
    """keras-hub's `TransformerEncoder` (pre-LN) with single-token output.

    Call arguments (besides `TransformerEncoder`'s `inputs`, `padding_mask`,
    `attention_mask`, `training`):
        query_index: None (every token), an int, a `(batch,)` int tensor, or
            `"last"` (each row's last token where `padding_mask` is True): return
            only that token's output, `(batch, 1, hidden_dim)`.
    """

    def call(
        self,
        inputs,
        padding_mask=None,
        attention_mask=None,
        query_index=None,
        training=None,
    ):
        fused = self._fused_attention_applies()
        if query_index is None and not fused:
            return super().call(
                inputs,
                padding_mask=padding_mask,
                attention_mask=attention_mask,
                training=training,
            )
        if not self.normalize_first:
            raise ValueError(
                "`query_index` needs a pre-LN block (`normalize_first=True`). "
                f"Received: normalize_first={self.normalize_first}"
            )
        if isinstance(query_index, str):  # "last"
            if padding_mask is None:
                raise ValueError(
                    "`query_index='last'` needs a `padding_mask`. Received: "
                    "padding_mask=None"
                )
            query_index = last_token_index(padding_mask)
        if padding_mask is None and query_index is None:
            # As keras-hub's block: a Keras mask on the inputs pads them.
            padding_mask = getattr(inputs, "_keras_mask", None)
        mask = None
        if padding_mask is not None:
            mask = ops.expand_dims(ops.cast(padding_mask, "int32"), axis=1)
        if attention_mask is not None:
            rows = ops.cast(attention_mask, "int32")
            if query_index is not None:
                rows = select_token(rows, query_index)
            mask = rows if mask is None else ops.minimum(mask, rows)
        normalized = self._self_attention_layer_norm(inputs)
        if fused:
            x = self._fused_attention(normalized, query_index, mask)
        else:
            x = self._self_attention_layer(
                query=select_token(normalized, query_index),
                value=normalized,
                key=normalized,
                attention_mask=mask,
                training=training,
            )
        x = self._self_attention_dropout(x, training=training)
        if query_index is not None:
            inputs = select_token(inputs, query_index)
        x = x + inputs
        residual = x
        x = self._feedforward_layer_norm(x)
        x = self._feedforward_intermediate_dense(x)
        x = self._feedforward_output_dense(x)
        x = self._feedforward_dropout(x, training=training)
        return x + residual

    def _fused_attention_applies(self):
        """Whether `_fused_attention` computes what `MultiHeadAttention` would."""
        attention = self._self_attention_layer
        dense = (
            attention._query_dense,
            attention._key_dense,
            attention._value_dense,
            attention._output_dense,
        )
        return (
            self.normalize_first
            and attention.dropout == 0.0
            and not getattr(attention, "_use_gate", False)
            and getattr(attention, "_sliding_window", None) is None
            and tuple(attention._attention_axes or (1,)) == (1,)
            and all(
                layer.bias is not None
                and not getattr(layer, "lora_enabled", False)
                and getattr(layer, "quantization_mode", None) is None
                for layer in dense
            )
        )

    def _fused_attention(self, x, query_index, mask):
        """Multi-head self-attention of `x` `(B, T, d)` as matmuls.

        `query_index` None: every token's output; else the selected token's,
        `(B, 1, d)`. `mask`: None or int `(B, T_query, T)`, 1 where a query may
        attend to a key.
        """
        attention = self._self_attention_layer
        heads, head_dim = attention.num_heads, attention.key_dim
        width = heads * head_dim

        def kernel(layer, rows):
            """`layer`'s kernel as a `(rows, -1)` matrix, and its bias."""
            w = ops.cast(layer.kernel, self.compute_dtype)
            return ops.reshape(w, (rows, -1)), ops.cast(layer.bias, w.dtype)

        d = attention._query_dense.kernel.shape[0]
        q_w, q_b = kernel(attention._query_dense, d)
        k_w, k_b = kernel(attention._key_dense, d)
        v_w, v_b = kernel(attention._value_dense, d)
        flat = ops.reshape
        if query_index is None:  # one (d, 3 * width) projection
            w = ops.concatenate([q_w, k_w, v_w], axis=1)
            b = ops.concatenate([flat(q_b, (-1,)), flat(k_b, (-1,)), flat(v_b, (-1,))])
            q, k, v = ops.split(ops.matmul(x, w) + b, 3, axis=-1)
        else:  # the query of one token; keys and values of all
            q = ops.matmul(select_token(x, query_index), q_w) + flat(q_b, (-1,))
            w = ops.concatenate([k_w, v_w], axis=1)
            b = ops.concatenate([flat(k_b, (-1,)), flat(v_b, (-1,))])
            k, v = ops.split(ops.matmul(x, w) + b, 2, axis=-1)
        batch = ops.shape(x)[0]

        def split_heads(t):
            return ops.reshape(t, (batch, -1, heads, head_dim))

        if mask is not None:
            mask = ops.expand_dims(ops.cast(mask, "bool"), axis=1)
        out = ops.dot_product_attention(
            split_heads(q),
            split_heads(k),
            split_heads(v),
            mask=mask,
            scale=1.0 / float(head_dim) ** 0.5,
            flash_attention=attention._flash_attention,
        )
        out = ops.reshape(out, (batch, -1, width))
        o_w, o_b = kernel(attention._output_dense, width)
        return ops.matmul(out, o_w) + o_b

    def compute_output_spec(self, inputs, query_index=None, **kwargs):
        shape = tuple(inputs.shape)
        if query_index is not None:
            shape = (shape[0], 1) + shape[2:]
        return keras.KerasTensor(shape, dtype=self.compute_dtype)
