"""The text decoder shared by the `Captioner` and the `DialogueModel`."""

import keras

from keras_mm.models.model_utils import check_positive_int


@keras.saving.register_keras_serializable(package="keras_mm")
class CaptionDecoder(keras.layers.Layer):
    """Token + position embedding, `num_layers` pre-LN decoder blocks, tied logits.

    The embeddings are layer-normalized (as in BERT) so that the text tokens
    start on the scale of the context tokens they attend to.

    Each block is keras-hub's `TransformerDecoder`: causal self-attention over
    the text, cross-attention to `context` (image tokens, or image and dialogue
    tokens), then a feed-forward layer (Vaswani et al., 2017). The output
    projection reuses the token embedding matrix (`ReversibleEmbedding`).

    Args:
        vocabulary_size: int.
        sequence_length: int. Longest token sequence (position embeddings).
        hidden_dim: int. Token width; divisible by `num_heads`.
        num_layers: int. Decoder blocks.
        num_heads: int.
        intermediate_dim: int. Feed-forward width.
        dropout: float in [0, 1).
        **kwargs: base layer arguments.

    Call arguments:
        token_ids: `(batch, T)` int, `T <= sequence_length`, right-padded.
        context: `(batch, T_c, hidden_dim)` tokens to attend to.
        context_mask: optional `(batch, T_c)` bool, True on real context tokens.
        training: bool.

    Returns:
        `(batch, T, vocabulary_size)` next-token logits (position t predicts
        token t + 1).
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
        from keras_hub.layers import TokenAndPositionEmbedding, TransformerDecoder

        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = float(dropout)
        self.embedding = TokenAndPositionEmbedding(
            vocabulary_size,
            sequence_length,
            hidden_dim,
            tie_weights=True,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02),
            dtype=self.dtype_policy,
            name="embedding",
        )
        self.blocks = [
            TransformerDecoder(
                intermediate_dim=intermediate_dim,
                num_heads=num_heads,
                dropout=self.dropout,
                activation="gelu",
                normalize_first=True,
                dtype=self.dtype_policy,
                name=f"decoder_block_{i}",
            )
            for i in range(num_layers)
        ]
        self.embedding_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, dtype=self.dtype_policy, name="embedding_norm"
        )
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, dtype=self.dtype_policy, name="final_norm"
        )

    def build(self, token_ids_shape, context_shape, context_mask_shape=None):
        token_ids_shape = tuple(token_ids_shape)
        sequence_shape = token_ids_shape + (self.hidden_dim,)
        self.embedding.build(token_ids_shape)
        self.embedding_norm.build(sequence_shape)
        for block in self.blocks:
            block.build(sequence_shape, tuple(context_shape))
        self.final_norm.build(sequence_shape)

    def call(self, token_ids, context, context_mask=None, training=None):
        x = self.embedding_norm(self.embedding(token_ids))
        for block in self.blocks:
            x = block(
                x,
                context,
                encoder_padding_mask=context_mask,
                use_causal_mask=True,
                training=training,
            )
        x = self.final_norm(x)
        return self.embedding.token_embedding(x, reverse=True)

    def compute_output_shape(
        self, token_ids_shape, context_shape=None, context_mask_shape=None
    ):
        return tuple(token_ids_shape) + (self.vocabulary_size,)

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
