import keras

from keras_mm.api_export import keras_mm_export
from keras_mm.encoders.encoder_utils import (
    OUTPUT_MODES,
    BaseEncoder,
    ClassToken,
    SequencePooling,
    check_choice,
    check_heads,
    check_image_shape,
    check_int,
    check_positive_float,
    check_rate,
    outputs_for,
    resolve_activation,
    shape_matches,
    transformer_blocks,
    unique_name,
)


def _check_image_shape(image_shape, patch_size):
    image_shape = check_image_shape(image_shape)
    if image_shape[0] % patch_size or image_shape[1] % patch_size:
        raise ValueError(
            "The image height and width must be divisible by `patch_size`. "
            f"Received: image_shape={tuple(image_shape)}, patch_size={patch_size}"
        )
    return tuple(image_shape)


@keras_mm_export("keras_mm.encoders.ImageEncoder")
class ImageEncoder(BaseEncoder):
    """A small Vision Transformer (ViT) image encoder.

    Splits the image into non-overlapping `patch_size` patches with a strided
    `Conv2D` (a linear patch embedding), optionally prepends a learned class token,
    adds learned position embeddings, runs `num_layers` pre-LayerNorm transformer
    blocks (keras-hub's `TransformerEncoder`) and a final `LayerNormalization`,
    then pools: the class token (`"cls"`) or the mean of the patch tokens
    (`"mean"`). This is the image tower of the seed's CLIP, VLP, VLAP and VLMP
    models (sections 3.1-3.2), after Dosovitskiy et al. (2021).

    With `output_mode="pooled"` and `pooling="cls"`, the last block computes the
    class token alone (all tokens still give keys and values): the same output
    for much less work (a third less of a 2-block tower's compute at 17 tokens).

    The encoder is a functional `keras.Model`; its variables live under its own
    name scope (`"image_encoder/..."`), so several encoders can be nested in one
    model (on torch, every variable then is a registered parameter).

    Args:
        image_shape: tuple of 3 ints. `(height, width, channels)`, channels last;
            height and width divisible by `patch_size`.
        patch_size: int. Side of the square patches.
        hidden_dim: int. Token width; divisible by `num_heads`.
        num_layers: int. Number of transformer blocks (>= 0).
        num_heads: int. Attention heads per block.
        intermediate_dim: int. Width of the blocks' feed-forward layer.
        dropout: float in [0, 1). Dropout in the blocks and after embedding.
        use_class_token: bool. Whether to prepend a learned class token.
        pooling: `"cls"` (needs `use_class_token=True`) or `"mean"` (patch
            tokens only).
        output_mode: `"pooled"`, `"sequence"` or `"both"` (see Returns).
        activation: str or callable. Feed-forward activation: a Keras name,
            `"quick_gelu"` (CLIP's, much faster on CPU than `"gelu"`) or a
            function.
        layer_norm_epsilon: float. Epsilon of every LayerNormalization.
        name: str or None. Defaults to a unique `"image_encoder"`, `"image_encoder_1"`.
        dtype: dtype or `keras.DTypePolicy` (e.g. `"mixed_bfloat16"`).
        **kwargs: other `keras.Model` arguments (`trainable`).

    Call arguments:
        inputs: float images `(batch, height, width, channels)` matching
            `image_shape`, or a dict `{"images": images}`. Scale them as you
            like (e.g. to [0, 1]); no rescaling happens inside.
        training: bool. Enables dropout.

    Returns:
        `output_mode="pooled"`: `(batch, hidden_dim)`. `"sequence"`: the token
        features after the final LayerNorm, `(batch, num_tokens, hidden_dim)`
        with `num_tokens = (height // patch_size) * (width // patch_size)` plus one
        with the class token (first). `"both"`: a dict `{"pooled_output",
        "sequence_output"}`.

    Example:

    >>> import numpy as np
    >>> encoder = ImageEncoder(image_shape=(16, 16, 3), patch_size=4, hidden_dim=8,
    ...                        num_layers=1, num_heads=2, intermediate_dim=16)
    >>> tuple(encoder(np.zeros((2, 16, 16, 3))).shape)
    (2, 8)

    Reference:
        Dosovitskiy et al., 2021, "An Image is Worth 16x16 Words"; seed 3.2.1.
    """

    def __init__(
        self,
        image_shape=(32, 32, 3),
        patch_size=4,
        hidden_dim=64,
        num_layers=2,
        num_heads=4,
        intermediate_dim=128,
        dropout=0.0,
        use_class_token=True,
        pooling="cls",
        output_mode="pooled",
        activation="gelu",
        layer_norm_epsilon=1e-6,
        name=None,
        dtype=None,
        **kwargs,
    ):
        check_int("patch_size", patch_size)
        image_shape = _check_image_shape(image_shape, patch_size)
        check_int("hidden_dim", hidden_dim)
        check_int("num_layers", num_layers, minimum=0)
        check_heads(hidden_dim, num_heads)
        check_int("intermediate_dim", intermediate_dim)
        dropout = check_rate("dropout", dropout)
        check_choice("pooling", pooling, ("cls", "mean"))
        check_choice("output_mode", output_mode, OUTPUT_MODES)
        layer_norm_epsilon = check_positive_float(
            "layer_norm_epsilon", layer_norm_epsilon
        )
        use_class_token = bool(use_class_token)
        if pooling == "cls" and not use_class_token:
            raise ValueError(
                "`pooling='cls'` needs `use_class_token=True`. Received: "
                "pooling='cls', use_class_token=False"
            )
        activation, activation_config = resolve_activation(activation)
        name = unique_name(name, "image_encoder")
        num_patches = (image_shape[0] // patch_size) * (image_shape[1] // patch_size)

        # === Layers and functional graph, under the encoder's name scope ===
        from keras_hub.layers import PositionEmbedding

        with keras.name_scope(name):
            images = keras.Input(shape=image_shape, name="images")
            x = keras.layers.Conv2D(
                hidden_dim,
                kernel_size=patch_size,
                strides=patch_size,
                padding="valid",
                dtype=dtype,
                name="patch_embedding",
            )(images)
            x = keras.layers.Reshape(
                (num_patches, hidden_dim), dtype=dtype, name="patches"
            )(x)
            if use_class_token:
                x = ClassToken(dtype=dtype, name="class_token")(x)
            position = PositionEmbedding(
                sequence_length=num_patches + int(use_class_token),
                dtype=dtype,
                name="position_embedding",
            )(x)
            x = keras.layers.Add(dtype=dtype, name="embeddings_add")([x, position])
            x = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")(x)
            blocks = transformer_blocks(
                num_layers,
                num_heads,
                intermediate_dim,
                dropout,
                activation,
                layer_norm_epsilon,
                dtype,
            )
            # Only the class token is output: the last block computes it alone.
            class_token_only = output_mode == "pooled" and pooling == "cls"
            for i, block in enumerate(blocks):
                last = i == len(blocks) - 1
                x = block(x, query_index=0 if last and class_token_only else None)
            sequence = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=dtype, name="final_layer_norm"
            )(x)
            pooled = SequencePooling(
                "first" if pooling == "cls" else "mean",
                offset=int(use_class_token and pooling == "mean"),
                dtype=dtype,
                name="pooling",
            )(sequence)
        super().__init__(
            inputs=images,
            outputs=outputs_for(output_mode, pooled, sequence),
            name=name,
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.image_shape = image_shape
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.use_class_token = use_class_token
        self.pooling = pooling
        self.output_mode = output_mode
        self.activation = activation_config
        self.layer_norm_epsilon = layer_norm_epsilon
        self.num_tokens = num_patches + int(use_class_token)

    _input_key = "images"

    def _check_inputs(self, inputs):
        images, shape = self._unpack_input(inputs)
        expected = (None,) + self.image_shape
        if not shape_matches(shape, expected):
            raise self._input_error(
                f"a float tensor of shape {expected} (batch, H, W, C)", images
            )
        return images

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_shape": self.image_shape,
                "patch_size": self.patch_size,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "use_class_token": self.use_class_token,
                "pooling": self.pooling,
                "output_mode": self.output_mode,
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
