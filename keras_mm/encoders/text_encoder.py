import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.encoders.encoder_utils import (
    OUTPUT_MODES,
    BaseEncoder,
    CausalMask,
    SequencePooling,
    as_tensor,
    check_choice,
    check_heads,
    check_int,
    check_positive_float,
    check_rate,
    input_error,
    outputs_for,
    resolve_activation,
    shape_matches,
    transformer_blocks,
    unique_name,
)
from keras_mm.utils.input_checks import _shape


@keras_mm_export("keras_mm.encoders.TextEncoder")
class TextEncoder(BaseEncoder):
    """A small transformer text encoder with padding masks and pooling.

    Token and learned position embeddings (keras-hub's `TokenAndPositionEmbedding`),
    `num_layers` pre-LayerNorm transformer blocks (keras-hub's
    `TransformerEncoder`) whose attention ignores padding tokens (and, with
    `causal=True`, later tokens), a final `LayerNormalization`, then pooling:
    `"mean"` over non-padding tokens, the `"first"` token, or the `"last"`
    non-padding token. This is the text tower of the seed's CLIP, VLP, VLAP and
    VLMP models (sections 3.1-3.2).

    Padding tokens never change the pooled output (nor the sequence features of
    real tokens), as long as padding is on the right so positions are unchanged.
    With `output_mode="pooled"` and `pooling="first"` or `"last"`, the last block
    computes the pooled token alone (all tokens still give keys and values): the
    same output for less work.

    Args:
        vocabulary_size: int. Number of token ids.
        max_sequence_length: int. Longest accepted sequence (size of the
            position table); shorter sequences are accepted as they are.
        hidden_dim: int. Token width; divisible by `num_heads`.
        num_layers: int. Number of transformer blocks (>= 0).
        num_heads: int. Attention heads per block.
        intermediate_dim: int. Width of the blocks' feed-forward layer.
        dropout: float in [0, 1). Dropout in the blocks and after embedding.
        pooling: `"mean"`, `"first"` or `"last"`.
        output_mode: `"pooled"`, `"sequence"` or `"both"` (see Returns).
        causal: bool. Whether each token attends only to itself and earlier
            tokens (GPT/CLIP-style; pair it with `pooling="last"`).
        pad_token_id: int. Id marking padding when no `padding_mask` is given.
        activation: str or callable. Feed-forward activation: a Keras name,
            `"quick_gelu"` (CLIP's, much faster on CPU than `"gelu"`) or a
            function.
        layer_norm_epsilon: float. Epsilon of every LayerNormalization.
        name: str or None. Defaults to a unique `"text_encoder"`, `"text_encoder_1"`.
        dtype: dtype or `keras.DTypePolicy` (e.g. `"mixed_bfloat16"`).
        **kwargs: other `keras.Model` arguments (`trainable`).

    Call arguments:
        inputs: a dict `{"token_ids": (batch, T) int, "padding_mask": (batch, T)
            bool or 0/1}`; `"padding_mask"` (True/1 = real token) is optional and
            defaults to `token_ids != pad_token_id`. A bare `(batch, T)` token-id
            tensor is accepted as `{"token_ids": tensor}`. Other keys are ignored.
        training: bool. Enables dropout.

    Returns:
        `output_mode="pooled"`: `(batch, hidden_dim)`. `"sequence"`: token
        features after the final LayerNorm, `(batch, T, hidden_dim)` (padding
        positions hold values; mask them with the padding mask). `"both"`: a
        dict `{"pooled_output", "sequence_output"}`.

    Example:

    >>> import numpy as np
    >>> encoder = TextEncoder(vocabulary_size=50, max_sequence_length=8,
    ...                       hidden_dim=8, num_layers=1, num_heads=2,
    ...                       intermediate_dim=16)
    >>> ids = np.array([[5, 6, 7, 0], [8, 9, 0, 0]])
    >>> tuple(encoder({"token_ids": ids}).shape)
    (2, 8)

    Reference:
        Vaswani et al., 2017; Radford et al., 2021 (CLIP); seed 3.2.1.
    """

    def __init__(
        self,
        vocabulary_size,
        max_sequence_length=32,
        hidden_dim=64,
        num_layers=2,
        num_heads=4,
        intermediate_dim=128,
        dropout=0.0,
        pooling="mean",
        output_mode="pooled",
        causal=False,
        pad_token_id=0,
        activation="gelu",
        layer_norm_epsilon=1e-6,
        name=None,
        dtype=None,
        **kwargs,
    ):
        check_int("vocabulary_size", vocabulary_size)
        check_int("max_sequence_length", max_sequence_length)
        check_int("hidden_dim", hidden_dim)
        check_int("num_layers", num_layers, minimum=0)
        check_heads(hidden_dim, num_heads)
        check_int("intermediate_dim", intermediate_dim)
        dropout = check_rate("dropout", dropout)
        check_choice("pooling", pooling, ("mean", "first", "last"))
        check_choice("output_mode", output_mode, OUTPUT_MODES)
        check_int("pad_token_id", pad_token_id, minimum=0)
        layer_norm_epsilon = check_positive_float(
            "layer_norm_epsilon", layer_norm_epsilon
        )
        causal = bool(causal)
        activation, activation_config = resolve_activation(activation)
        name = unique_name(name, "text_encoder")

        # === Layers and functional graph, under the encoder's name scope ===
        from keras_hub.layers import TokenAndPositionEmbedding

        with keras.name_scope(name):
            token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
            padding_mask = keras.Input(shape=(None,), dtype="bool", name="padding_mask")
            x = TokenAndPositionEmbedding(
                vocabulary_size=vocabulary_size,
                sequence_length=max_sequence_length,
                embedding_dim=hidden_dim,
                dtype=dtype,
                name="embedding",
            )(token_ids)
            x = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")(x)
            attention_mask = CausalMask(name="causal_mask")(x) if causal else None
            blocks = transformer_blocks(
                num_layers,
                num_heads,
                intermediate_dim,
                dropout,
                activation,
                layer_norm_epsilon,
                dtype,
            )
            # When one token is the only output, the last block computes it alone.
            query_index = None
            if output_mode == "pooled" and pooling == "first" and blocks:
                query_index = 0
            elif output_mode == "pooled" and pooling == "last" and blocks:
                query_index = "last"
            for i, block in enumerate(blocks):
                x = block(
                    x,
                    padding_mask=padding_mask,
                    attention_mask=attention_mask,
                    query_index=query_index if i == len(blocks) - 1 else None,
                )
            sequence = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=dtype, name="final_layer_norm"
            )(x)
            if query_index is None:
                pooled = SequencePooling(pooling, dtype=dtype, name="pooling")(
                    sequence, padding_mask=padding_mask
                )
            else:  # `sequence` holds the pooled token alone
                pooled = SequencePooling("first", dtype=dtype, name="pooling")(sequence)
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs=outputs_for(output_mode, pooled, sequence),
            name=name,
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.max_sequence_length = max_sequence_length
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.pooling = pooling
        self.output_mode = output_mode
        self.causal = causal
        self.pad_token_id = pad_token_id
        self.activation = activation_config
        self.layer_norm_epsilon = layer_norm_epsilon

    def _check_inputs(self, inputs):
        return check_text_inputs(
            self.__class__.__name__,
            inputs,
            self.pad_token_id,
            self.max_sequence_length,
        )

    def _input_shape_struct(self, input_shape):
        return text_input_shapes(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "max_sequence_length": self.max_sequence_length,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "pooling": self.pooling,
                "output_mode": self.output_mode,
                "causal": self.causal,
                "pad_token_id": self.pad_token_id,
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


def text_input_shapes(input_shape):
    """`{"token_ids", "padding_mask"}` shapes from a token-id shape or a dict."""
    if isinstance(input_shape, dict):
        input_shape = input_shape["token_ids"]
    shape = tuple(input_shape)
    return {"token_ids": shape, "padding_mask": shape}


def check_text_inputs(name, inputs, pad_token_id, max_sequence_length=None):
    """Standardize text inputs to `{"token_ids", "padding_mask"}` (bool mask).

    Raises a ValueError naming the key and shapes for a missing `token_ids`, a
    rank other than 2, a too long sequence or a mask of another shape.
    """
    if isinstance(inputs, dict):
        if "token_ids" not in inputs:
            raise ValueError(
                f"{name}: a dict input must have the key 'token_ids' (and may have "
                f"'padding_mask'). Received: keys={sorted(inputs)}"
            )
        token_ids = inputs["token_ids"]
        padding_mask = inputs.get("padding_mask")
    else:
        token_ids, padding_mask = inputs, None
    token_ids = as_tensor(token_ids)
    shape = _shape(token_ids)
    expected = "an integer tensor of shape (batch, sequence_length)"
    if max_sequence_length is not None:
        expected += f" with sequence_length <= {max_sequence_length}"
    too_long = (
        len(shape) == 2
        and max_sequence_length is not None
        and shape[1] is not None
        and shape[1] > max_sequence_length
    )
    if len(shape) != 2 or too_long:
        raise input_error(name, "token_ids", expected, token_ids)
    if padding_mask is None:
        padding_mask = ops.not_equal(token_ids, pad_token_id)
    else:
        padding_mask = as_tensor(padding_mask)
        if not shape_matches(padding_mask, shape):
            raise ValueError(
                f"{name}: `padding_mask` must have the shape of `token_ids`. "
                f"Received: token_ids shape={shape}, padding_mask "
                f"shape={_shape(padding_mask)}"
            )
        if keras.backend.standardize_dtype(padding_mask.dtype) != "bool":
            padding_mask = ops.cast(padding_mask, "bool")
    return {"token_ids": token_ids, "padding_mask": padding_mask}
