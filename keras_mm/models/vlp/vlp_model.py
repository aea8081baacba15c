import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.layers import ProjectionHead
from keras_mm.models.clip.clip_model import LOSSES, contrastive_head, contrastive_loss
from keras_mm.models.model_utils import (
    call_text_encoder,
    check_choice,
    check_non_negative,
    check_positive_int,
    image_like_input,
    pooled_features,
    sequence_features,
    text_inputs,
)
from keras_mm.models.multimodal_model import MultimodalModel
from keras_mm.models.vlp.vlp_layers import VLPFusionEncoder
from keras_mm.models.vlp.vlp_presets import vlp_presets


def _masked_mean(x, mask):
    """Mean over tokens `(batch, T, d) -> (batch, d)`, skipping padding."""
    if mask is None:
        return ops.mean(x, axis=1)
    w = ops.expand_dims(ops.cast(mask, x.dtype), -1)
    return ops.sum(x * w, axis=1) / ops.maximum(ops.sum(w, axis=1), 1.0)


@keras_mm_export("keras_mm.models.VLP")
class VLP(MultimodalModel):
    """Vision-language pre-training with a fusion encoder (ALBEF-style).

    Seed sections 3.1.1 and 5.1.1: an image encoder and a text encoder produce
    token sequences; a fusion encoder (by default a stack of
    `keras_mm.layers.CrossModalAttention` blocks in which text tokens attend to
    image tokens) returns the fused features, as the seed's listing does. It is
    trained without labels by two objectives (Li et al., 2021):

    - image-text contrastive (ITC) on projected, L2-normalised unimodal
      embeddings with a learnable temperature (`clip` or `siglip` loss);
    - image-text matching (ITM): a 2-way classifier on the pooled fused
      features of the B matched pairs and of 2B hard negatives, one per text
      and one per image, sampled (`keras.random.categorical`, seeded) from
      the in-batch similarities with the positive masked out, so that similar
      but wrong pairs are preferred; in evaluation (`training=False`) the most
      similar negative is taken, so `evaluate` is deterministic.

    `loss = itc_weight * itc_loss + itm_weight * itm_loss`; both terms are
    reported as metrics. The image tokens are linearly mapped to the text width.
    Optional `y` of `(batch,)` group ids (as ALBEF uses image ids for COCO's
    several captions per image) marks same-group pairs as positives for ITC and
    keeps them out of the negatives: without it, a duplicate of the positive in
    the batch is the likeliest "hard negative" and teaches ITM label noise.

    Args:
        image_encoder: `keras.Model` from images to features; a token sequence
            `(batch, T, d)` (or a dict with `"sequence_output"`) is used as is, a
            pooled vector as a single token.
        text_encoder: `keras.Model` from `token_ids` (or a dict with
            `"token_ids"`, `"padding_mask"`) to token features.
        embed_dim: int. Size of the contrastive embedding space.
        fusion_encoder: a layer called as `fusion_encoder(text_tokens,
            image_tokens, query_mask=padding_mask)` returning text-shaped tokens
            (e.g. one `CrossModalAttention`), or None for a `VLPFusionEncoder`
            with `num_fusion_layers` blocks of `num_heads` heads.
        num_fusion_layers: int. Blocks of the default fusion encoder.
        num_heads: int. Heads of the default fusion encoder.
        loss: `"clip"` or `"siglip"` for the ITC term.
        itc_weight: float >= 0. Weight of the contrastive term.
        itm_weight: float >= 0. Weight of the matching term.
        seed: int or None. Seed of the hard-negative sampling.
        dtype: dtype policy of the model's own layers.
        **kwargs: `name`, `trainable`.

    Call arguments:
        inputs: dict with `"images"`, `"token_ids"` and the text encoder's other
            inputs (e.g. `"padding_mask"`).

    Returns:
        A dict: `"fused_features"` `(batch, T_text, width)`, `"itm_logits"`
        `(batch, 2)` (class 1 = "the text matches the image"),
        `"image_embeddings"`/`"text_embeddings"` `(batch, embed_dim)` unit
        norm, and `"image_tokens"` `(batch, T_image, width)` /
        `"text_tokens"` `(batch, T_text, width)`, the fusion encoder's inputs
        that the ITM loss reuses for the negatives.

    Example:

    >>> model = VLP(image_encoder, text_encoder, embed_dim=32)  # doctest: +SKIP
    >>> model.compile(optimizer="adam")  # doctest: +SKIP
    >>> model.fit(image_text_dataset, epochs=3)  # doctest: +SKIP

    Reference:
        Li et al., 2021, "Align before Fuse" (ALBEF); seed 3.1.1, 5.1.1.
    """

    _nested_layer_keys = ("image_encoder", "text_encoder", "fusion_encoder")
    presets = vlp_presets
    min_batch_size = 2

    def __init__(
        self,
        image_encoder,
        text_encoder,
        embed_dim=64,
        fusion_encoder=None,
        num_fusion_layers=2,
        num_heads=4,
        loss="clip",
        itc_weight=1.0,
        itm_weight=1.0,
        seed=None,
        dtype=None,
        **kwargs,
    ):
        check_positive_int("embed_dim", embed_dim)
        check_choice("loss", loss, LOSSES)
        check_non_negative("itc_weight", itc_weight)
        check_non_negative("itm_weight", itm_weight)
        if fusion_encoder is None:
            fusion_encoder = VLPFusionEncoder(
                num_layers=num_fusion_layers,
                num_heads=num_heads,
                dtype=dtype,
                name="fusion_encoder",
            )
        elif not isinstance(fusion_encoder, keras.layers.Layer):
            raise ValueError(
                "`fusion_encoder` must be a Keras layer or None. Received: "
                f"fusion_encoder of type {type(fusion_encoder).__name__}"
            )

        # === Functional graph ===
        images = image_like_input(image_encoder, "image_encoder", "images")
        text = text_inputs(text_encoder)
        padding_mask = text.get("padding_mask")
        image_sequence = sequence_features(image_encoder(images))
        text_sequence = sequence_features(call_text_encoder(text_encoder, text))
        width = text_sequence.shape[-1]
        image_to_fusion = keras.layers.Dense(width, dtype=dtype, name="image_to_fusion")
        image_projection = ProjectionHead(
            embed_dim, dtype=dtype, name="image_projection"
        )
        text_projection = ProjectionHead(embed_dim, dtype=dtype, name="text_projection")
        itm_head = keras.layers.Dense(2, dtype=dtype, name="itm_head")

        image_tokens = image_to_fusion(image_sequence)
        fused = fusion_encoder(text_sequence, image_tokens, query_mask=padding_mask)
        outputs = {
            "fused_features": fused,
            "itm_logits": itm_head(_masked_mean(fused, padding_mask)),
            "image_embeddings": image_projection(
                pooled_features(image_sequence, "mean")
            ),
            "text_embeddings": text_projection(
                pooled_features(text_sequence, "mean", mask=padding_mask)
            ),
            "image_tokens": image_tokens,
            "text_tokens": text_sequence,
        }
        super().__init__(
            inputs={"images": images, **text}, outputs=outputs, dtype=dtype, **kwargs
        )

        # === Attributes ===
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.fusion_encoder = fusion_encoder
        self.image_to_fusion = image_to_fusion
        self.image_projection = image_projection
        self.text_projection = text_projection
        self.itm_head = itm_head
        self.embed_dim = embed_dim
        self.num_fusion_layers = num_fusion_layers
        self.num_heads = num_heads
        self.loss_name = loss
        self.itc_weight = float(itc_weight)
        self.itm_weight = float(itm_weight)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="itm_sampler")
        self.logits_head = contrastive_head(
            loss, None, 100.0, self.dtype_policy, "logits_head"
        )
        self.logits_head.build((None, embed_dim), (None, embed_dim))
        self._add_term_trackers(["itc_loss", "itm_loss"])
        self._finish_init()

    # ------------------------------------------------------------------ loss
    def sample_hard_negatives(self, logits, groups=None, training=True):
        """Indices of one hard negative image per text and one text per image.

        Args:
            logits: float32 `(B, B)` image-text logits (row = image).
            groups: optional `(B,)` group ids; pairs of one group (e.g. the
                captions of one image) are never sampled as negatives.
            training: bool. True samples; False (evaluation) takes the most
                similar negative, so `evaluate` gives the same `itm_loss` for
                the same weights on every backend and every run.

        Returns:
            `(negative_image_for_text, negative_text_for_image)`, two `(B,)`
            int32 tensors sampled with probability `softmax` of the logits with
            the positives (the diagonal, or the same group) excluded, or their
            argmax when not training.
        """
        logits = ops.stop_gradient(ops.cast(logits, "float32"))
        positive = ops.eye(ops.shape(logits)[0], dtype="float32") > 0
        if groups is not None:
            groups = ops.reshape(groups, (-1,))
            same = ops.expand_dims(groups, 1) == ops.expand_dims(groups, 0)
            positive = ops.logical_or(positive, same)
        masked = ops.where(positive, -1e9, logits)
        if not training:
            return (
                ops.cast(ops.argmax(masked, axis=0), "int32"),
                ops.cast(ops.argmax(masked, axis=1), "int32"),
            )
        image_for_text = keras.random.categorical(
            ops.transpose(masked), 1, seed=self.seed_generator
        )[:, 0]
        text_for_image = keras.random.categorical(masked, 1, seed=self.seed_generator)[
            :, 0
        ]
        return ops.cast(image_for_text, "int32"), ops.cast(text_for_image, "int32")

    def loss_terms(self, x, y=None, y_pred=None, training=False):
        """ITC + ITM; `y`: None or `(batch,)` group ids (e.g. image ids)."""
        logits = self.logits_head(y_pred["image_embeddings"], y_pred["text_embeddings"])
        itc = contrastive_loss(self.loss_name, logits, y)

        image_tokens, text_tokens = y_pred["image_tokens"], y_pred["text_tokens"]
        mask = x.get("padding_mask")
        image_idx, text_idx = self.sample_hard_negatives(logits, y, training)
        query = ops.concatenate(
            [text_tokens, ops.take(text_tokens, text_idx, axis=0)], axis=0
        )
        context = ops.concatenate(
            [ops.take(image_tokens, image_idx, axis=0), image_tokens], axis=0
        )
        query_mask = None
        if mask is not None:
            query_mask = ops.concatenate([mask, ops.take(mask, text_idx, axis=0)], 0)
        fused = self.fusion_encoder(
            query, context, query_mask=query_mask, training=training
        )
        negative_logits = self.itm_head(_masked_mean(fused, query_mask))
        itm_logits = ops.cast(
            ops.concatenate([y_pred["itm_logits"], negative_logits], axis=0),
            "float32",
        )
        batch = ops.shape(logits)[0]
        labels = ops.concatenate(
            [ops.ones((batch,), "int32"), ops.zeros((2 * batch,), "int32")], axis=0
        )
        itm = ops.mean(
            keras.losses.sparse_categorical_crossentropy(
                labels, itm_logits, from_logits=True
            )
        )
        total = self.itc_weight * itc + self.itm_weight * itm
        return {"loss": total, "itc_loss": itc, "itm_loss": itm}

    def match_probability(self, inputs):
        """P(text matches image) `(batch,)` for the given pairs, via the ITM head."""
        logits = self(inputs, training=False)["itm_logits"]
        return ops.softmax(ops.cast(logits, "float32"), axis=-1)[:, 1]

    # ------------------------------------------------------------------ config
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_encoder": keras.layers.serialize(self.image_encoder),
                "text_encoder": keras.layers.serialize(self.text_encoder),
                "fusion_encoder": keras.layers.serialize(self.fusion_encoder),
                "embed_dim": self.embed_dim,
                "num_fusion_layers": self.num_fusion_layers,
                "num_heads": self.num_heads,
                "loss": self.loss_name,
                "itc_weight": self.itc_weight,
                "itm_weight": self.itm_weight,
                "seed": self.seed,
            }
        )
        return config
