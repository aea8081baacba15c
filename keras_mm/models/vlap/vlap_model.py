import keras

from keras_mm.api_export import keras_mm_export
from keras_mm.layers import ProjectionHead
from keras_mm.models.clip.clip_model import LOSSES, contrastive_head, contrastive_loss
from keras_mm.models.model_utils import (
    call_text_encoder,
    check_choice,
    check_non_negative,
    check_positive_int,
    image_like_input,
    make_fusion,
    normalize,
    pooled_features,
    serialize_fusion,
    text_inputs,
)
from keras_mm.models.multimodal_model import MultimodalModel
from keras_mm.models.vlap.vlap_presets import vlap_presets

MODALITIES = ("image", "text", "audio")
PAIRS = (("image", "text"), ("image", "audio"), ("text", "audio"))


@keras_mm_export("keras_mm.models.VLAP")
class VLAP(MultimodalModel):
    """Vision-language-audio pre-training: pairwise alignment plus tri-modal fusion.

    Seed sections 3.1.2, 3.2.2, 5.1.2 and 5.2.2. Three encoders (vision,
    language, audio) are projected to one `embed_dim` space and L2-normalised.
    Training needs no labels:

    - pairwise contrastive alignment of the three pairs (image-text,
      image-audio, text-audio), each with its own learnable temperature
      (`ContrastiveLogits`), `L_align = mean of the 3 pair losses`;
    - the fused tri-modal embedding `h = fusion([z_image, z_text, z_audio])`
      (`keras_mm.layers.AttentionFusion`, `GatedFusion` or `ConcatFusion`),
      L2-normalised, is aligned contrastively with each unimodal embedding,
      `L_fused = mean_m L(h, z_m)`, so the fusion is trained and `h` lives in
      the same space (it retrieves any single modality).

    `loss = L_align + fusion_weight * L_fused`, both reported as metrics
    (`align_loss`, `fusion_loss`). Optional `y` of `(batch,)` group ids marks
    same-group pairs as positives in every contrastive term. The seed's
    listings compute the mean cosine similarity, which is not a loss; this is
    the corrected objective.

    Args:
        image_encoder: `keras.Model` from images to features.
        text_encoder: `keras.Model` from `token_ids` (or a dict with
            `"token_ids"`, `"padding_mask"`) to features.
        audio_encoder: `keras.Model` from audio (e.g. raw waveform) to features.
        embed_dim: int. Shared embedding size.
        fusion: `"attention"`, `"gated"`, `"concat"` or a fusion layer taking a
            list of three `(batch, embed_dim)` tensors.
        loss: `"clip"` or `"siglip"`.
        fusion_weight: float >= 0. Weight of `L_fused`.
        projection_hidden_dim: int or None. Hidden width of the projections.
        dtype: dtype policy of the model's own layers.
        **kwargs: `name`, `trainable`.

    Call arguments:
        inputs: dict with `"images"`, `"token_ids"` (+ the text encoder's other
            inputs, e.g. `"padding_mask"`) and `"audio"`.

    Returns:
        A dict of unit-norm `(batch, embed_dim)` tensors: `"image_embeddings"`,
        `"text_embeddings"`, `"audio_embeddings"`, `"fused_embeddings"`.

    Example:

    >>> model = VLAP(image_enc, text_enc, audio_enc, fusion="gated")  # doctest: +SKIP
    >>> model.compile(optimizer="adam")  # doctest: +SKIP
    >>> model.fit(trimodal_dataset, epochs=3)  # doctest: +SKIP

    Reference:
        Girdhar et al., 2023 (ImageBind); Guzhov et al., 2022 (AudioCLIP);
        seed 3.1.2, 3.2.2, 4.3, 5.1.2, 5.2.2.
    """

    _nested_layer_keys = ("image_encoder", "text_encoder", "audio_encoder", "fusion")
    presets = vlap_presets
    min_batch_size = 2

    def __init__(
        self,
        image_encoder,
        text_encoder,
        audio_encoder,
        embed_dim=64,
        fusion="attention",
        loss="clip",
        fusion_weight=0.5,
        projection_hidden_dim=None,
        dtype=None,
        **kwargs,
    ):
        check_positive_int("embed_dim", embed_dim)
        check_choice("loss", loss, LOSSES)
        check_non_negative("fusion_weight", fusion_weight)
        fusion_layer = make_fusion(fusion, embed_dim, dtype)

        # === Functional graph ===
        images = image_like_input(image_encoder, "image_encoder", "images")
        text = text_inputs(text_encoder)
        audio = image_like_input(audio_encoder, "audio_encoder", "audio")
        features = {
            "image": pooled_features(image_encoder(images)),
            "text": pooled_features(
                call_text_encoder(text_encoder, text),
                mask=text.get("padding_mask"),
            ),
            "audio": pooled_features(audio_encoder(audio)),
        }
        projections = {
            m: ProjectionHead(
                embed_dim,
                hidden_dim=projection_hidden_dim,
                dtype=dtype,
                name=f"{m}_projection",
            )
            for m in MODALITIES
        }
        embeddings = {m: projections[m](features[m]) for m in MODALITIES}
        fused = fusion_layer([embeddings[m] for m in MODALITIES])
        outputs = {f"{m}_embeddings": embeddings[m] for m in MODALITIES}
        outputs["fused_embeddings"] = normalize(fused)
        super().__init__(
            inputs={"images": images, **text, "audio": audio},
            outputs=outputs,
            dtype=dtype,
            **kwargs,
        )

        # === Attributes ===
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.audio_encoder = audio_encoder
        self.image_projection = projections["image"]
        self.text_projection = projections["text"]
        self.audio_projection = projections["audio"]
        self.fusion_layer = fusion_layer
        self.fusion = fusion
        self.embed_dim = embed_dim
        self.loss_name = loss
        self.fusion_weight = float(fusion_weight)
        self.projection_hidden_dim = projection_hidden_dim
        for a, b in PAIRS + (("fused", "all"),):
            head = contrastive_head(
                loss, None, 100.0, self.dtype_policy, f"{a}_{b}_logits"
            )
            head.build((None, embed_dim), (None, embed_dim))
            setattr(self, f"{a}_{b}_logits", head)
        self._add_term_trackers(["align_loss", "fusion_loss"])
        self._finish_init()

    def loss_terms(self, x, y=None, y_pred=None, training=False):
        """Alignment + fusion terms; `y`: None or `(batch,)` group ids."""
        z = {m: y_pred[f"{m}_embeddings"] for m in MODALITIES}
        pair_losses = [
            contrastive_loss(
                self.loss_name, getattr(self, f"{a}_{b}_logits")(z[a], z[b]), y
            )
            for a, b in PAIRS
        ]
        align = sum(pair_losses) / len(pair_losses)
        head = self.fused_all_logits
        fused = y_pred["fused_embeddings"]
        fused_losses = [
            contrastive_loss(self.loss_name, head(fused, z[m]), y) for m in MODALITIES
        ]
        fusion_loss = sum(fused_losses) / len(fused_losses)
        total = align + self.fusion_weight * fusion_loss
        return {"loss": total, "align_loss": align, "fusion_loss": fusion_loss}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_encoder": keras.layers.serialize(self.image_encoder),
                "text_encoder": keras.layers.serialize(self.text_encoder),
                "audio_encoder": keras.layers.serialize(self.audio_encoder),
                "embed_dim": self.embed_dim,
                "fusion": serialize_fusion(self.fusion),
                "loss": self.loss_name,
                "fusion_weight": self.fusion_weight,
                "projection_hidden_dim": self.projection_hidden_dim,
            }
        )
        return config
