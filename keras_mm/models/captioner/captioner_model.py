import keras
import numpy as np
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.models.captioner.captioner_layers import CaptionDecoder
from keras_mm.models.captioner.generation import GenerationMixin, next_token_loss
from keras_mm.models.model_utils import (
    check_encoder,
    check_positive_int,
    image_like_input,
    sequence_features,
)
from keras_mm.models.multimodal_model import MultimodalModel, _shape


def check_token_ids(name, arg, value, vocabulary_size):
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name}: `{arg}` must be an integer. Received: {value!r}")
    if not 0 <= value < vocabulary_size:
        raise ValueError(
            f"{name}: `{arg}` must be in [0, vocabulary_size={vocabulary_size}). "
            f"Received: {arg}={value}"
        )
    return value


def check_image_batch(name, images, image_shape, arg="images"):
    """Images as a float32 NumPy array of shape `(batch,) + image_shape`."""
    shape = _shape(images)
    expected = (None,) + tuple(image_shape)
    ok = len(shape) == len(expected) and all(
        e is None or s == e for s, e in zip(shape, expected)
    )
    if not ok or shape[0] == 0:
        raise ValueError(
            f"{name}: `{arg}` must be a non-empty batch of shape {expected}. "
            f"Received: {arg} shape={shape}"
        )
    return np.asarray(keras.ops.convert_to_numpy(images), dtype="float32")


@keras_mm_export("keras_mm.models.Captioner")
class Captioner(GenerationMixin, MultimodalModel):
    """Image captioning: an image encoder and a transformer text decoder.

    Seed section 6 (image captioning), after Show, Attend and Tell (Xu et al.,
    2015) with a transformer decoder (Vaswani et al., 2017): the image encoder's
    tokens (e.g. ViT patch tokens) are projected to `hidden_dim` and the
    decoder, `num_layers` blocks of causal self-attention plus cross-attention
    to the image tokens, predicts each caption token from the image and the
    previous tokens. Training is teacher-forced with `fit`:

        loss = - sum_t m_{t+1} log p(w_{t+1} | w_{<=t}, image) / sum_t m_{t+1}

    over the real tokens (`m` = `padding_mask`), in float32. `generate` decodes
    greedily or with beam search inside one compiled loop
    (`keras_mm.models.captioner.generation.TokenGenerator`); greedy decoding
    gives the same tokens on TensorFlow, JAX and PyTorch from the same weights.

    Captions are `[START] words... [END]`, right-padded with
    `padding_token_id`. Padding is only used by the loss: the decoder is causal
    and padding follows the text, so padded positions never change the logits
    of real ones.

    Args:
        image_encoder: `keras.Model` from images to features; a token sequence
            `(batch, T, d)` (e.g. `ImageEncoder(output_mode="sequence")`, or a
            dict with `"sequence_output"`) is used as is, a pooled vector as a
            single token.
        vocabulary_size: int. Including the special tokens.
        sequence_length: int. Longest caption, `[START]` and `[END]` included.
        hidden_dim: int. Decoder width; divisible by `num_heads`.
        num_layers: int. Decoder blocks.
        num_heads: int. Attention heads of each block.
        intermediate_dim: int or None. Feed-forward width; None = 2 * hidden_dim.
        dropout: float in [0, 1).
        start_token_id: int. The token that starts every caption (default
            prompt of `generate`).
        end_token_id: int. The token that ends a caption.
        padding_token_id: int. The padding token (written after `[END]`).
        dtype: dtype policy of the model's own layers.
        **kwargs: `name`, `trainable`.

    Call arguments:
        inputs: dict with `"images"` and `"token_ids"` `(batch, T)` int,
            `T <= sequence_length`; an optional `"padding_mask"` (default
            `token_ids != padding_token_id`) is used by the loss.

    Returns:
        A dict `{"logits": (batch, T, vocabulary_size)}`; `logits[:, t]`
        predicts token `t + 1`.

    Example:

    >>> from keras_mm.encoders import ImageEncoder
    >>> encoder = ImageEncoder(image_shape=(16, 16, 3), patch_size=8,
    ...     hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32,
    ...     output_mode="sequence")
    >>> model = Captioner(encoder, vocabulary_size=20, sequence_length=8,
    ...     hidden_dim=16, num_layers=1, num_heads=2)
    >>> model.generate(np.zeros((2, 16, 16, 3)), max_length=4).shape
    (2, 5)

    Reference:
        Xu et al., 2015, "Show, Attend and Tell"; Vaswani et al., 2017;
        seed section 6 (image captioning).
    """

    _nested_layer_keys = ("image_encoder",)

    def __init__(
        self,
        image_encoder,
        vocabulary_size,
        sequence_length,
        hidden_dim=64,
        num_layers=2,
        num_heads=4,
        intermediate_dim=None,
        dropout=0.0,
        start_token_id=2,
        end_token_id=3,
        padding_token_id=0,
        dtype=None,
        **kwargs,
    ):
        name = "Captioner"
        check_encoder(image_encoder, "image_encoder")
        check_positive_int("vocabulary_size", vocabulary_size)
        check_positive_int("sequence_length", sequence_length)
        if sequence_length < 2:
            raise ValueError(
                "`sequence_length` must be >= 2 ([START] and one more token). "
                f"Received: sequence_length={sequence_length}"
            )
        if intermediate_dim is None:
            intermediate_dim = 2 * hidden_dim if isinstance(hidden_dim, int) else 0
        for arg, value in (
            ("start_token_id", start_token_id),
            ("end_token_id", end_token_id),
            ("padding_token_id", padding_token_id),
        ):
            check_token_ids(name, arg, value, vocabulary_size)
        decoder = CaptionDecoder(
            vocabulary_size=vocabulary_size,
            sequence_length=sequence_length,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            dropout=dropout,
            dtype=dtype,
            name="decoder",
        )
        image_projection = keras.layers.Dense(
            hidden_dim, dtype=dtype, name="image_projection"
        )

        # === Functional graph ===
        images = image_like_input(image_encoder, "image_encoder", "images")
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        context = image_projection(sequence_features(image_encoder(images)))
        logits = decoder(token_ids, context)
        super().__init__(
            inputs={"images": images, "token_ids": token_ids},
            outputs={"logits": logits},
            dtype=dtype,
            **kwargs,
        )

        # === Attributes ===
        self.image_encoder = image_encoder
        self.decoder = decoder
        self.image_projection = image_projection
        self.image_shape = tuple(images.shape[1:])
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = float(dropout)
        self.start_token_id = start_token_id
        self.end_token_id = end_token_id
        self.padding_token_id = padding_token_id
        self._finish_init()

    # ------------------------------------------------------------------ inputs
    def _validate_inputs(self, inputs):
        inputs = super()._validate_inputs(inputs)
        length = _shape(inputs["token_ids"])[1]
        if length is not None and not 1 <= length <= self.sequence_length:
            raise ValueError(
                f"Captioner: inputs['token_ids'] must have 1 to sequence_length="
                f"{self.sequence_length} tokens. Received: token_ids "
                f"shape={_shape(inputs['token_ids'])}"
            )
        return inputs

    # -------------------------------------------------------------------- loss
    def loss_terms(self, x, y=None, y_pred=None, training=False):
        token_ids = x["token_ids"]
        mask = x.get("padding_mask")
        if mask is not None and _shape(mask) != _shape(token_ids):
            raise ValueError(
                "Captioner: inputs['padding_mask'] must have the shape of "
                f"inputs['token_ids']. Received: token_ids shape={_shape(token_ids)}"
                f", padding_mask shape={_shape(mask)}"
            )
        loss = next_token_loss(
            y_pred["logits"], token_ids, mask, pad_id=self.padding_token_id
        )
        return {"loss": loss}

    def evaluate_loss_terms(self, x, y=None):
        """Python floats of every loss term on one batch `x` (inference mode).

        Unlike the base class, keys that only the loss reads (e.g.
        `"answer_ids"`, `"padding_mask"`) are kept.
        """
        y_pred = self(x, training=False)
        terms = self.loss_terms(x, y=y, y_pred=y_pred, training=False)
        return {k: float(ops.convert_to_numpy(v)) for k, v in terms.items()}

    # -------------------------------------------------------------- generation
    def _generation_inputs(self):
        return {"images": keras.Input(self.image_shape, name="images")}

    def _generation_context(self, inputs):
        features = sequence_features(self.image_encoder(inputs["images"]))
        return self.image_projection(features), None

    def _check_generation_inputs(self, inputs):
        if isinstance(inputs, dict):
            if "images" not in inputs:
                raise ValueError(
                    "Captioner.generate: a dict `images` input needs the key "
                    f"'images'. Received: keys={sorted(inputs)}"
                )
            inputs = inputs["images"]
        images = check_image_batch("Captioner.generate", inputs, self.image_shape)
        return {"images": images}

    # ------------------------------------------------------------------ config
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_encoder": keras.layers.serialize(self.image_encoder),
                "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "start_token_id": self.start_token_id,
                "end_token_id": self.end_token_id,
                "padding_token_id": self.padding_token_id,
            }
        )
        return config
