"""The encoders' transformer block (not public API).

keras-hub's pre-LN `TransformerEncoder`, plus a `query_index` call argument that
computes a single token's output. An encoder whose only output is one pooled token
(a ViT class token, a text's first or last token) calls its last block this way:
every token still gives keys and values, but the query, attention output and
feed-forward run on one token instead of T. The result equals the full block's
output at that token. With 2 blocks over 17 tokens that removes over a third of a
tower's matmul work (benchmarks/RESULTS.md).
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
        if query_index is None:
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
        mask = None
        if padding_mask is not None:
            mask = ops.expand_dims(ops.cast(padding_mask, "int32"), axis=1)
        if attention_mask is not None:
            rows = ops.cast(select_token(attention_mask, query_index), "int32")
            mask = rows if mask is None else ops.minimum(mask, rows)
        normalized = self._self_attention_layer_norm(inputs)
        x = self._self_attention_layer(
            query=select_token(normalized, query_index),
            value=normalized,
            key=normalized,
            attention_mask=mask,
            training=training,
        )
        x = self._self_attention_dropout(x, training=training)
        x = x + select_token(inputs, query_index)
        residual = x
        x = self._feedforward_layer_norm(x)
        x = self._feedforward_intermediate_dense(x)
        x = self._feedforward_output_dense(x)
        x = self._feedforward_dropout(x, training=training)
        return x + residual

    def compute_output_spec(self, inputs, query_index=None, **kwargs):
        shape = tuple(inputs.shape)
        if query_index is not None:
            shape = (shape[0], 1) + shape[2:]
        return keras.KerasTensor(shape, dtype=self.compute_dtype)
