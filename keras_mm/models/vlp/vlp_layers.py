import keras

from keras_mm.layers import CrossModalAttention
from keras_mm.models.model_utils import check_positive_int


@keras.saving.register_keras_serializable(package="keras_mm")
class VLPFusionEncoder(keras.layers.Layer):
    """A stack of `CrossModalAttention` blocks: text tokens attend to image tokens.

    The fusion encoder of ALBEF (Li et al., 2021) and of the seed's VLP
    (section 3.1.1): each block is a pre-LN transformer block whose queries are
    the text tokens and whose keys/values are the image tokens. The head size is
    `width // num_heads`, where `width` is the text token width.

    Args:
        num_layers: int. Number of blocks.
        num_heads: int. Attention heads; must divide the text width.
        intermediate_dim: int or None. Feed-forward width; None = 2 * width.
        dropout: float in [0, 1).
        **kwargs: base layer arguments.

    Call arguments:
        query: `(batch, T_text, width)` text tokens.
        context: `(batch, T_image, d)` image tokens.
        query_mask: optional `(batch, T_text)` padding mask of the text.
        context_mask: optional `(batch, T_image)` mask of the image tokens.
        training: bool.

    Returns:
        `(batch, T_text, width)` fused tokens.
    """

    def __init__(
        self, num_layers=2, num_heads=4, intermediate_dim=None, dropout=0.0, **kwargs
    ):
        super().__init__(**kwargs)
        check_positive_int("num_layers", num_layers)
        check_positive_int("num_heads", num_heads)
        if intermediate_dim is not None:
            check_positive_int("intermediate_dim", intermediate_dim)
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = float(dropout)
        self.supports_masking = True
        self.blocks = []

    def build(self, query_shape, context_shape):
        width = query_shape[-1]
        if width is None or width % self.num_heads:
            raise ValueError(
                f"{self.__class__.__name__}: the text width must be divisible by "
                f"`num_heads`. Received: query shape={tuple(query_shape)}, "
                f"num_heads={self.num_heads}"
            )
        self.blocks = [
            CrossModalAttention(
                num_heads=self.num_heads,
                key_dim=width // self.num_heads,
                intermediate_dim=self.intermediate_dim or 2 * width,
                dropout=self.dropout,
                dtype=self.dtype_policy,
                name=f"block_{i}",
            )
            for i in range(self.num_layers)
        ]
        for block in self.blocks:
            block.build(query_shape, context_shape)

    def call(self, query, context, query_mask=None, context_mask=None, training=None):
        x = query
        for block in self.blocks:
            x = block(
                x,
                context,
                query_mask=query_mask,
                context_mask=context_mask,
                training=training,
            )
        return x

    def compute_mask(self, query, context=None, query_mask=None, context_mask=None):
        return query_mask

    def compute_output_shape(self, query_shape, context_shape=None):
        return tuple(query_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
            }
        )
        return config
