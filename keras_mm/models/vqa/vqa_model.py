import keras
import numpy as np
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.models.model_utils import (
    FUSIONS,
    call_text_encoder,
    check_choice,
    check_encoder,
    check_positive_int,
    image_like_input,
    make_fusion,
    pooled_features,
    sequence_features,
    serialize_fusion,
    text_inputs,
)
from keras_mm.models.multimodal_model import (
    MultimodalModel,
    _shape,
    compile_arguments,
)
from keras_mm.models.vlp.vlp_layers import VLPFusionEncoder

VQA_FUSIONS = FUSIONS + ("cross_attention",)
_LOGIT_LOSSES = {
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
}


class MaskedMean(keras.layers.Layer):
    """Mean over tokens `(batch, T, d) -> (batch, d)` skipping padding (float32)."""

    def call(self, inputs, padding_mask=None):
        x = ops.cast(inputs, "float32")
        if padding_mask is None:
            return ops.cast(ops.mean(x, axis=1), inputs.dtype)
        w = ops.expand_dims(ops.cast(padding_mask, "float32"), -1)
        pooled = ops.sum(x * w, axis=1) / ops.maximum(ops.sum(w, axis=1), 1.0)
        return ops.cast(pooled, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


def _visual_key(encoder):
    """`"videos"` for an encoder of rank-5 clips, else `"images"`."""
    struct = check_encoder(encoder, "image_encoder")
    tensors = keras.tree.flatten(struct)
    if len(tensors) == 1 and len(tensors[0].shape) == 5:
        return "videos"
    return "images"


def _feature_width(x):
    return x.shape[-1]


@keras_mm_export("keras_mm.models.VQAModel")
class VQAModel(MultimodalModel):
    """Visual (and video) question answering as classification over answers.

    Seed section 6.2: an image (or video) encoder and a question encoder are
    fused and a classifier scores every answer of a fixed answer vocabulary, as
    in the VQA v2 baselines (Antol et al., 2015; Teney et al., 2018). The fusion
    is selectable:

    - `"attention"`, `"gated"`, `"concat"`: the pooled image vector and the
      pooled question vector are projected to `hidden_dim` and fused by
      `AttentionFusion` (seed 4.3.1), `GatedFusion` (4.3.2) or `ConcatFusion`
      (5.3.1);
    - `"cross_attention"`: the question tokens attend to the image tokens
      through `num_fusion_layers` `CrossModalAttention` blocks (seed 3.3.2),
      are mean-pooled over the non-padding tokens, and the mean image token
      is added (attention weights sum to one, so the attended tokens alone
      cannot count). Give encoders that return tokens
      (`output_mode="sequence"` or `"both"`) for this one;
    - or any fusion layer that takes a list of two `(batch, hidden_dim)`
      tensors.

    A two-layer MLP maps the fused vector to `num_answers` logits. With a
    `keras_mm.encoders.VideoEncoder` as `image_encoder` the same model answers
    questions about clips (video QA); its input key is then `"videos"`.

    Train with `compile(optimizer, loss=...)` + `fit(x, y)`: `y` holds answer ids
    `(batch,)` for the default softmax cross-entropy, or soft VQA scores
    `(batch, num_answers)` (`keras_mm.data.make_answer_scores`) with
    `loss="binary_crossentropy"`. The model outputs logits, so these loss names
    are mapped to their `from_logits=True` forms.

    Args:
        image_encoder: `keras.Model` from images `(batch, H, W, C)` (or videos
            `(batch, T, H, W, C)`) to features.
        text_encoder: `keras.Model` from `token_ids` (or a dict with
            `"token_ids"`, `"padding_mask"`) to features.
        num_answers: int. Size of the answer vocabulary.
        answer_vocabulary: list of `num_answers` str or None. Used by
            `predict_answers` to return strings.
        fusion: `"attention"`, `"gated"`, `"concat"`, `"cross_attention"` or a
            fusion layer.
        hidden_dim: int or None. Fusion width; None = the text feature width.
        num_fusion_layers: int. Cross-attention blocks (`"cross_attention"`).
        num_heads: int. Their heads; must divide `hidden_dim`.
        classifier_hidden_dim: int or None. Hidden width of the answer MLP;
            None = `2 * hidden_dim`.
        dropout: float in [0, 1). Dropout in the fusion and the classifier.
        image_pooling: `"mean"` or `"first"`, for image tokens in the vector
            fusions.
        dtype: dtype policy of the model's own layers.
        **kwargs: `name`, `trainable`.

    Call arguments:
        inputs: dict with `"images"` (or `"videos"`), `"token_ids"` and the text
            encoder's other inputs (e.g. `"padding_mask"`), one batch size.

    Returns:
        A dict `{"logits": (batch, num_answers)}`.

    Example:

    >>> model = VQAModel(image_encoder, text_encoder, num_answers=11,
    ...                  fusion="cross_attention")  # doctest: +SKIP
    >>> model.compile(optimizer="adam")  # doctest: +SKIP
    >>> model.fit(data["train"]["inputs"], data["train"]["answers"])  # doctest: +SKIP
    >>> model.predict_answers(data["test"]["inputs"])[:2]  # doctest: +SKIP
    ['red', '2']

    Reference:
        Antol et al., 2015, "VQA: Visual Question Answering"; Teney et al.,
        2018, "Tips and Tricks for Visual Question Answering"; seed 3.3, 6.2.
    """

    _nested_layer_keys = ("image_encoder", "text_encoder", "fusion")

    def __init__(
        self,
        image_encoder,
        text_encoder,
        num_answers,
        answer_vocabulary=None,
        fusion="cross_attention",
        hidden_dim=None,
        num_fusion_layers=1,
        num_heads=2,
        classifier_hidden_dim=None,
        dropout=0.0,
        image_pooling="mean",
        dtype=None,
        **kwargs,
    ):
        check_positive_int("num_answers", num_answers)
        if answer_vocabulary is not None:
            if isinstance(answer_vocabulary, str) or len(answer_vocabulary) != (
                num_answers
            ):
                raise ValueError(
                    "`answer_vocabulary` must be a list of `num_answers` strings. "
                    f"Received: num_answers={num_answers}, answer_vocabulary of "
                    f"length {len(answer_vocabulary)}"
                )
            answer_vocabulary = [str(a) for a in answer_vocabulary]
        if not isinstance(fusion, keras.layers.Layer):
            check_choice("fusion", fusion, VQA_FUSIONS)
        if hidden_dim is not None:
            check_positive_int("hidden_dim", hidden_dim)
        check_positive_int("num_fusion_layers", num_fusion_layers)
        check_positive_int("num_heads", num_heads)
        if classifier_hidden_dim is not None:
            check_positive_int("classifier_hidden_dim", classifier_hidden_dim)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(
                f"`dropout` must be in [0, 1). Received: dropout={dropout!r}"
            )
        check_choice("image_pooling", image_pooling, ("mean", "first"))

        # === Functional graph ===
        visual_key = _visual_key(image_encoder)
        visual = image_like_input(image_encoder, "image_encoder", visual_key)
        text = text_inputs(text_encoder)
        padding_mask = text.get("padding_mask")
        visual_out = image_encoder(visual)
        text_out = call_text_encoder(text_encoder, text)
        if hidden_dim is None:
            hidden_dim = _feature_width(sequence_features(text_out))
        if fusion == "cross_attention":
            if hidden_dim % num_heads:
                raise ValueError(
                    "`hidden_dim` must be divisible by `num_heads`. Received: "
                    f"hidden_dim={hidden_dim}, num_heads={num_heads}"
                )
            fusion_layer = VLPFusionEncoder(
                num_layers=num_fusion_layers,
                num_heads=num_heads,
                dropout=dropout,
                dtype=dtype,
                name="fusion",
            )
        else:
            fusion_layer = make_fusion(fusion, hidden_dim, dtype)
        image_projection = keras.layers.Dense(
            hidden_dim, dtype=dtype, name="image_projection"
        )
        question_projection = keras.layers.Dense(
            hidden_dim, dtype=dtype, name="question_projection"
        )
        classifier_hidden = keras.layers.Dense(
            classifier_hidden_dim or 2 * hidden_dim,
            activation="gelu",
            dtype=dtype,
            name="classifier_hidden",
        )
        classifier_dropout = keras.layers.Dropout(
            dropout, dtype=dtype, name="classifier_dropout"
        )
        answer_logits = keras.layers.Dense(
            num_answers, dtype=dtype, name="answer_logits"
        )

        if fusion == "cross_attention":
            question_tokens = sequence_features(text_out)
            token_mask = padding_mask if question_tokens.shape[1] != 1 else None
            image_tokens = image_projection(sequence_features(visual_out))
            fused_tokens = fusion_layer(
                question_projection(question_tokens),
                image_tokens,
                query_mask=token_mask,
            )
            fused = MaskedMean(dtype=dtype, name="question_pooling")(
                fused_tokens, padding_mask=token_mask
            )
            # Plus the mean image token: attention weights sum to one, so the
            # attended tokens alone cannot tell one square from three.
            image_mean = MaskedMean(dtype=dtype, name="image_pooling")(image_tokens)
            fused = keras.layers.Add(dtype=dtype, name="fused_add")([fused, image_mean])
        else:
            image_vector = image_projection(pooled_features(visual_out, image_pooling))
            question_vector = question_projection(
                pooled_features(text_out, "mean", mask=padding_mask)
            )
            fused = fusion_layer([image_vector, question_vector])
        logits = answer_logits(classifier_dropout(classifier_hidden(fused)))
        super().__init__(
            inputs={visual_key: visual, **text},
            outputs={"logits": logits},
            dtype=dtype,
            **kwargs,
        )

        # === Attributes (after super().__init__, for torch) ===
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.fusion = fusion_layer
        self.fusion_name = fusion if isinstance(fusion, str) else None
        self.num_answers = num_answers
        self.answer_vocabulary = answer_vocabulary
        self.hidden_dim = hidden_dim
        self.num_fusion_layers = num_fusion_layers
        self.num_heads = num_heads
        self.classifier_hidden_dim = classifier_hidden_dim
        self.dropout = float(dropout)
        self.image_pooling = image_pooling
        self.visual_key = visual_key
        self._finish_init()

    # ----------------------------------------------------------------- inputs
    def _validate_inputs(self, inputs):
        if (
            getattr(self, "visual_key", None) == "videos"
            and isinstance(inputs, dict)
            and ("videos" in inputs)
        ):
            got = _shape(inputs["videos"])
            frames = self._inputs_struct["videos"].shape[1]
            if len(got) == 5 and None not in (got[1], frames) and got[1] != frames:
                raise ValueError(
                    f"{self.__class__.__name__}: `videos` must have "
                    f"num_frames={frames} frames (axis 1). Received: videos "
                    f"shape={got}"
                )
        inputs = super()._validate_inputs(inputs)
        ids = inputs["token_ids"]
        shape = _shape(ids)
        if len(shape) == 2 and shape[1] == 0:
            raise ValueError(
                f"{self.__class__.__name__}: the question is empty: `token_ids` "
                f"must have at least one token per row. Received: token_ids "
                f"shape={shape}"
            )
        self._check_question_rows(inputs)
        return inputs

    def _check_question_rows(self, inputs):
        """With NumPy inputs, reject rows without any question token."""
        if not isinstance(inputs, dict):
            return
        ids = inputs.get("token_ids")
        if not isinstance(ids, np.ndarray) or ids.ndim != 2 or not len(ids):
            return
        mask = inputs.get("padding_mask")
        if isinstance(mask, np.ndarray) and mask.shape == ids.shape:
            present = mask.astype(bool)
        else:
            present = ids != getattr(self.text_encoder, "pad_token_id", 0)
        empty = np.flatnonzero(~present.any(axis=1))
        if empty.size:
            raise ValueError(
                f"{self.__class__.__name__}: every question needs at least one "
                f"token; rows {empty[:5].tolist()} of `token_ids` are empty (all "
                f"padding). Received: token_ids shape={ids.shape}"
            )

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_question_rows(x)
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_question_rows(x)
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._check_question_rows(x)
        return super().predict(x, *args, **kwargs)

    # ------------------------------------------------------------------- loss
    def compile(self, optimizer="adam", loss="auto", metrics="auto", **kwargs):
        """Compile with a classification loss on the answer logits.

        Args:
            optimizer: optimizer or its name.
            loss: `"auto"` (sparse softmax cross-entropy on answer ids), a loss
                name (`"sparse_categorical_crossentropy"`,
                `"categorical_crossentropy"`, `"binary_crossentropy"` are used
                with `from_logits=True`) or a `keras.losses.Loss`.
            metrics: `"auto"` (answer accuracy: sparse or argmax-of-scores),
                or Keras metrics.
            **kwargs: other `keras.Model.compile` arguments.
        """
        if loss == "auto" or loss is None:
            loss = "sparse_categorical_crossentropy"
        if isinstance(loss, str) and loss in _LOGIT_LOSSES:
            name = loss
            loss = _LOGIT_LOSSES[name](from_logits=True)
        if metrics == "auto":
            sparse = isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
            metrics = [
                keras.metrics.SparseCategoricalAccuracy(name="accuracy")
                if sparse
                else keras.metrics.CategoricalAccuracy(name="accuracy")
            ]
        keras.Model.compile(
            self, optimizer=optimizer, loss=loss, metrics=metrics, **kwargs
        )

    def compile_from_config(self, config):
        # `compile` is overridden, so Keras would skip it when loading a file.
        self.compile(**compile_arguments(config))
        if hasattr(self, "optimizer") and self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        return keras.Model.compute_loss(
            self,
            x=x,
            y=y,
            y_pred=y_pred,
            sample_weight=sample_weight,
            training=training,
        )

    # ---------------------------------------------------------------- answers
    def predict_answers(self, inputs, batch_size=256, top_k=1):
        """The most likely answer(s) for each example.

        Args:
            inputs: dict of NumPy arrays, as for `predict`.
            batch_size: int.
            top_k: int. Answers per example.

        Returns:
            With an `answer_vocabulary`: a list of str (`top_k=1`) or of lists
            of `top_k` str, best first. Without: an int array `(N,)` or
            `(N, top_k)` of answer ids.
        """
        check_positive_int("top_k", top_k)
        logits = self.predict(inputs, batch_size=batch_size, verbose=0)["logits"]
        order = np.argsort(-np.asarray(logits, "float32"), axis=-1, kind="stable")
        ids = order[:, :top_k]
        if self.answer_vocabulary is None:
            return ids[:, 0] if top_k == 1 else ids
        words = [[self.answer_vocabulary[i] for i in row] for row in ids]
        return [w[0] for w in words] if top_k == 1 else words

    # ----------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_encoder": keras.layers.serialize(self.image_encoder),
                "text_encoder": keras.layers.serialize(self.text_encoder),
                "num_answers": self.num_answers,
                "answer_vocabulary": self.answer_vocabulary,
                "fusion": self.fusion_name or serialize_fusion(self.fusion),
                "hidden_dim": self.hidden_dim,
                "num_fusion_layers": self.num_fusion_layers,
                "num_heads": self.num_heads,
                "classifier_hidden_dim": self.classifier_hidden_dim,
                "dropout": self.dropout,
                "image_pooling": self.image_pooling,
            }
        )
        return config
