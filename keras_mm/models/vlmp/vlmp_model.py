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
    make_fusion,
    normalize,
    pooled_features,
    serialize_fusion,
    text_inputs,
)
from keras_mm.models.multimodal_model import MultimodalModel
from keras_mm.models.vlmp.vlmp_presets import vlmp_presets

ACTION_TYPES = ("continuous", "discrete")


@keras_mm_export("keras_mm.models.VLMP")
class VLMP(MultimodalModel):
    """Vision-language-action pre-training: instruction-conditioned policy.

    Seed sections 3.1.3 and 3.2.3 (VLMP / VLMAP). An observation image and a
    language instruction are encoded, projected to `embed_dim`, L2-normalised
    and fused (`fusion`: attention, gated or concat); a policy head maps the
    fused state to an action:

    - `action_type="continuous"`: `actions` `(batch, action_dim)`, trained by
      mean squared error against `y`;
    - `action_type="discrete"`: `action_logits` `(batch, num_actions)`, trained
      by cross-entropy against integer `y`.

    Auxiliary, label-free vision-language-action alignment (VLMAP): an
    image-text contrastive loss `itc_loss` always, and, when actions `y` are
    given, a contrastive loss `vla_loss` between the fused vision-language
    embedding and an embedding of the true action (`action_encoder`, then a
    projection head; discrete actions are one-hot encoded, equal actions count
    as positives). `loss = action_weight * action_loss + contrastive_weight *
    (itc_loss + vla_loss)`. `fit(x)` with no actions trains the alignment
    only (the policy head and the action tower then get no gradient, and Keras
    warns "Gradients do not exist" for them); `fit(x, actions)` trains both.

    Args:
        image_encoder: `keras.Model` from images to features.
        text_encoder: `keras.Model` from `token_ids` (or a dict with
            `"token_ids"`, `"padding_mask"`) to features.
        action_dim: int. Size of a continuous action (or number of discrete
            actions when `action_type="discrete"` and `num_actions` is None).
        action_type: `"continuous"` or `"discrete"`.
        num_actions: int or None. Number of discrete actions.
        action_encoder: optional `keras.Model` from actions (`(batch,
            action_dim)` floats, or `(batch, num_actions)` one-hot) to features,
            e.g. `keras_mm.encoders.ActionEncoder`; None uses the projection
            head alone.
        embed_dim: int. Shared embedding size.
        hidden_dim: int. Width of the policy head's hidden layer.
        fusion: `"attention"`, `"gated"`, `"concat"` or a fusion layer.
        loss: `"clip"` or `"siglip"` for the contrastive terms.
        action_weight: float >= 0.
        contrastive_weight: float >= 0.
        dtype: dtype policy of the model's own layers.
        **kwargs: `name`, `trainable`.

    Call arguments:
        inputs: dict with `"images"`, `"token_ids"` (+ `"padding_mask"` where
            the text encoder takes it).

    Returns:
        A dict: `"actions"` `(batch, action_dim)` (continuous) or
        `"action_logits"` `(batch, num_actions)` (discrete), and unit-norm
        `"image_embeddings"`, `"text_embeddings"`, `"fused_embeddings"`
        `(batch, embed_dim)`.

    Example:

    >>> model = VLMP(image_encoder, text_encoder, action_dim=2)  # doctest: +SKIP
    >>> model.compile(optimizer="adam")  # doctest: +SKIP
    >>> model.fit(observations_and_instructions, actions, epochs=5)  # doctest: +SKIP

    Reference:
        Brohan et al., 2023 (RT-2); Radford et al., 2021 (CLIP); seed 3.1.3, 3.2.3.
    """

    _nested_layer_keys = ("image_encoder", "text_encoder", "action_encoder", "fusion")
    presets = vlmp_presets
    min_batch_size = 2

    def __init__(
        self,
        image_encoder,
        text_encoder,
        action_dim=2,
        action_type="continuous",
        num_actions=None,
        action_encoder=None,
        embed_dim=64,
        hidden_dim=128,
        fusion="concat",
        loss="clip",
        action_weight=1.0,
        contrastive_weight=0.5,
        dtype=None,
        **kwargs,
    ):
        check_choice("action_type", action_type, ACTION_TYPES)
        check_positive_int("action_dim", action_dim)
        if action_type == "discrete":
            num_actions = action_dim if num_actions is None else num_actions
            check_positive_int("num_actions", num_actions)
        check_positive_int("embed_dim", embed_dim)
        check_positive_int("hidden_dim", hidden_dim)
        check_choice("loss", loss, LOSSES)
        check_non_negative("action_weight", action_weight)
        check_non_negative("contrastive_weight", contrastive_weight)
        fusion_layer = make_fusion(fusion, embed_dim, dtype)

        # === Functional graph ===
        images = image_like_input(image_encoder, "image_encoder", "images")
        text = text_inputs(text_encoder)
        image_projection = ProjectionHead(
            embed_dim, dtype=dtype, name="image_projection"
        )
        text_projection = ProjectionHead(embed_dim, dtype=dtype, name="text_projection")
        z_image = image_projection(pooled_features(image_encoder(images)))
        z_text = text_projection(
            pooled_features(
                call_text_encoder(text_encoder, text), mask=text.get("padding_mask")
            )
        )
        fused = fusion_layer([z_image, z_text])
        policy_hidden = keras.layers.Dense(
            hidden_dim, activation="gelu", dtype=dtype, name="policy_hidden"
        )
        out_dim = action_dim if action_type == "continuous" else num_actions
        policy_output = keras.layers.Dense(out_dim, dtype=dtype, name="policy_output")
        action_key = "actions" if action_type == "continuous" else "action_logits"
        outputs = {
            action_key: policy_output(policy_hidden(fused)),
            "image_embeddings": z_image,
            "text_embeddings": z_text,
            "fused_embeddings": normalize(fused),
        }
        super().__init__(
            inputs={"images": images, **text}, outputs=outputs, dtype=dtype, **kwargs
        )

        # === Attributes ===
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.action_encoder = action_encoder
        self.image_projection = image_projection
        self.text_projection = text_projection
        self.fusion_layer = fusion_layer
        self.policy_hidden = policy_hidden
        self.policy_output = policy_output
        self.action_dim = action_dim
        self.action_type = action_type
        self.num_actions = num_actions
        self.action_key = action_key
        self.embed_dim = embed_dim
        self.hidden_dim = hidden_dim
        self.fusion = fusion
        self.loss_name = loss
        self.action_weight = float(action_weight)
        self.contrastive_weight = float(contrastive_weight)
        # The action tower runs on the labels, outside the graph: build it here.
        action_in = keras.Input(
            (action_dim if action_type == "continuous" else num_actions,),
            name="actions",
        )
        # A zero action (a common one) is projected to `gelu(b_1) W_2 + b_2`;
        # with zero biases that is the zero vector, where the normalisation's
        # gradient is `1 / epsilon` (1e6: Adam's second moment reached 1e8 in
        # two steps). A random output bias of norm ~1 puts it at norm ~1, so
        # its gradient is bounded by `2 * scale / ||b_2||` like any other.
        self.action_projection = ProjectionHead(
            embed_dim,
            hidden_dim=embed_dim,
            normalize=False,
            bias_initializer=keras.initializers.RandomNormal(stddev=embed_dim**-0.5),
            dtype=dtype,
            name="action_projection",
        )
        features = action_in if action_encoder is None else action_encoder(action_in)
        self.action_projection(pooled_features(features))
        self.image_text_logits = contrastive_head(
            loss, None, 100.0, self.dtype_policy, "image_text_logits"
        )
        self.state_action_logits = contrastive_head(
            loss, None, 100.0, self.dtype_policy, "state_action_logits"
        )
        for head in (self.image_text_logits, self.state_action_logits):
            head.build((None, embed_dim), (None, embed_dim))
        self._add_term_trackers(["action_loss", "itc_loss", "vla_loss"])
        self._finish_init()

    def _actions(self, y):
        if isinstance(y, dict):
            if "actions" not in y:
                raise ValueError(
                    f"{self.__class__.__name__}: a dict `y` must have the key "
                    f"'actions'. Received: keys={sorted(y)}"
                )
            y = y["actions"]
        return y

    def encode_actions(self, actions):
        """Unit-norm action embeddings `(batch, embed_dim)` (the VLMAP tower)."""
        if self.action_type == "discrete":
            actions = ops.one_hot(
                ops.reshape(ops.cast(actions, "int32"), (-1,)), self.num_actions
            )
        else:
            actions = ops.cast(actions, "float32")
        features = (
            actions if self.action_encoder is None else self.action_encoder(actions)
        )
        return normalize(self.action_projection(pooled_features(features)))

    def loss_terms(self, x, y=None, y_pred=None, training=False):
        itc = contrastive_loss(
            self.loss_name,
            self.image_text_logits(
                y_pred["image_embeddings"], y_pred["text_embeddings"]
            ),
        )
        terms = {"itc_loss": itc}
        total = self.contrastive_weight * itc
        if y is not None:
            actions = self._actions(y)
            prediction = ops.cast(y_pred[self.action_key], "float32")
            if self.action_type == "continuous":
                target = ops.cast(actions, "float32")
                if tuple(target.shape[1:]) != tuple(prediction.shape[1:]):
                    raise ValueError(
                        f"{self.__class__.__name__}: actions `y` must have shape "
                        f"(batch, {self.action_dim}). Received: y "
                        f"shape={tuple(target.shape)}"
                    )
                action_loss = ops.mean(ops.square(prediction - target))
                labels = None
            else:
                labels = ops.reshape(ops.cast(actions, "int32"), (-1,))
                action_loss = ops.mean(
                    keras.losses.sparse_categorical_crossentropy(
                        labels, prediction, from_logits=True
                    )
                )
            vla = contrastive_loss(
                self.loss_name,
                self.state_action_logits(
                    y_pred["fused_embeddings"], self.encode_actions(actions)
                ),
                labels,
            )
            terms.update({"action_loss": action_loss, "vla_loss": vla})
            total = total + self.action_weight * action_loss
            total = total + self.contrastive_weight * vla
        terms["loss"] = total
        return terms

    def predict_actions(self, inputs, batch_size=256):
        """Continuous actions, or the argmax discrete action ids, as NumPy."""
        out = self.predict(inputs, batch_size=batch_size, verbose=0)[self.action_key]
        return out if self.action_type == "continuous" else out.argmax(-1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_encoder": keras.layers.serialize(self.image_encoder),
                "text_encoder": keras.layers.serialize(self.text_encoder),
                "action_dim": self.action_dim,
                "action_type": self.action_type,
                "num_actions": self.num_actions,
                "action_encoder": None
                if self.action_encoder is None
                else keras.layers.serialize(self.action_encoder),
                "embed_dim": self.embed_dim,
                "hidden_dim": self.hidden_dim,
                "fusion": serialize_fusion(self.fusion),
                "loss": self.loss_name,
                "action_weight": self.action_weight,
                "contrastive_weight": self.contrastive_weight,
            }
        )
        return config
