import math

import keras
import numpy as np
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.models.captioner.captioner_layers import CaptionDecoder
from keras_mm.models.captioner.captioner_model import (
    check_image_batch,
    check_token_ids,
)
from keras_mm.models.captioner.generation import GenerationMixin, next_token_loss
from keras_mm.models.dialogue.dialogue_layers import (
    SegmentEmbedding,
    fuse_dialogue,
    masked_mean,
)
from keras_mm.models.model_utils import (
    check_encoder,
    check_non_negative,
    check_positive_int,
    image_like_input,
)
from keras_mm.models.multimodal_model import MultimodalModel, _shape

_TEXT_KEYS = ("history_ids", "question_ids")


@keras_mm_export("keras_mm.models.DialogueModel")
class DialogueModel(GenerationMixin, MultimodalModel):
    """Image-grounded multi-turn dialogue: rank candidate answers or generate one.

    Seed section 6 (multimodal dialogue), after Visual Dialog (Das et al., 2017).
    One transformer reads the joint sequence `[image tokens; history tokens;
    question tokens]`, each with a segment embedding (a single-stream fusion,
    as VisualBERT), so the question attends to the image and to the earlier
    turns that resolve "it". Two heads read the fused tokens:

    - discriminative (VisDial's ranking task): the masked mean of the fused
      question tokens, `q = W_q mean(h_question)`, scores each candidate answer
      `a_n = W_a mean(E[candidate_n])` (word embeddings shared with the
      dialogue) as `s_n = q . a_n / sqrt(d)`; trained with cross-entropy over
      the candidates against the index of the true one;
    - generative: a `CaptionDecoder` (causal self-attention, cross-attention to
      all fused tokens) trained teacher-forced on `"answer_ids"` and decoded by
      `generate` (greedy or beam).

    `loss = ranking_weight * ranking_loss + generation_weight *
    generation_loss`; both terms are reported as metrics.

    Args:
        image_encoder: `keras.Model` from images to features (a token
            sequence is used as is, a pooled vector as one token).
        vocabulary_size: int. Shared by questions, history and answers.
        history_length: int. Tokens of `"history_ids"`.
        question_length: int. Tokens of `"question_ids"`.
        answer_length: int. Longest `"answer_ids"`, `[START]`/`[END]` included.
        hidden_dim: int. Width of every token; divisible by `num_heads`.
        num_layers: int. Blocks of the joint (fusion) transformer.
        num_heads: int.
        num_decoder_layers: int. Blocks of the answer decoder.
        intermediate_dim: int or None. Feed-forward width; None = 2 * hidden_dim.
        dropout: float in [0, 1).
        ranking_weight: float >= 0. Weight of the candidate-ranking loss.
        generation_weight: float >= 0. Weight of the answer-generation loss.
        start_token_id, end_token_id, padding_token_id: int. Special tokens of
            the answers (padding id also marks padding in history, question
            and candidates).
        dtype: dtype policy of the model's own layers.
        **kwargs: `name`, `trainable`.

    Call arguments:
        inputs: dict with `"images"`, `"history_ids"` `(batch,
            history_length)`, `"question_ids"` `(batch, question_length)` and
            `"candidate_ids"` `(batch, N, L)` int. For training, also
            `"answer_ids"` `(batch, T <= answer_length)` (used by the loss) and
            `y` = `(batch,)` index of the true candidate.

    Returns:
        A dict: `"candidate_scores"` `(batch, N)` float32, `"context_tokens"`
        `(batch, T_joint, hidden_dim)` (the fused tokens the decoder attends
        to) and `"context_mask"` `(batch, T_joint)` bool.

    Example:

    >>> model = DialogueModel(encoder, vocabulary_size=40, history_length=24,
    ...     question_length=8, answer_length=5)  # doctest: +SKIP
    >>> model.compile(optimizer="adam")  # doctest: +SKIP
    >>> model.fit(data["train"]["inputs"], data["train"]["labels"])  # doctest: +SKIP
    >>> model.generate(inputs, max_length=4)  # doctest: +SKIP

    Reference:
        Das et al., 2017, "Visual Dialog"; Li et al., 2019, "VisualBERT";
        seed section 6 (multimodal dialogue).
    """

    _nested_layer_keys = ("image_encoder",)

    def __init__(
        self,
        image_encoder,
        vocabulary_size,
        history_length,
        question_length,
        answer_length,
        hidden_dim=64,
        num_layers=2,
        num_heads=4,
        num_decoder_layers=1,
        intermediate_dim=None,
        dropout=0.0,
        ranking_weight=1.0,
        generation_weight=1.0,
        start_token_id=2,
        end_token_id=3,
        padding_token_id=0,
        dtype=None,
        **kwargs,
    ):
        from keras_hub.layers import TokenAndPositionEmbedding, TransformerEncoder

        check_encoder(image_encoder, "image_encoder")
        for arg, value in (
            ("vocabulary_size", vocabulary_size),
            ("history_length", history_length),
            ("question_length", question_length),
            ("answer_length", answer_length),
            ("hidden_dim", hidden_dim),
            ("num_layers", num_layers),
            ("num_heads", num_heads),
            ("num_decoder_layers", num_decoder_layers),
        ):
            check_positive_int(arg, value)
        if answer_length < 2:
            raise ValueError(
                "`answer_length` must be >= 2 ([START] and one more token). "
                f"Received: answer_length={answer_length}"
            )
        if hidden_dim % num_heads:
            raise ValueError(
                "`hidden_dim` must be divisible by `num_heads`. Received: "
                f"hidden_dim={hidden_dim}, num_heads={num_heads}"
            )
        if intermediate_dim is None:
            intermediate_dim = 2 * hidden_dim
        check_positive_int("intermediate_dim", intermediate_dim)
        check_non_negative("ranking_weight", ranking_weight)
        check_non_negative("generation_weight", generation_weight)
        for arg, value in (
            ("start_token_id", start_token_id),
            ("end_token_id", end_token_id),
            ("padding_token_id", padding_token_id),
        ):
            check_token_ids("DialogueModel", arg, value, vocabulary_size)

        # === Layers ===
        layers = {
            "image_projection": keras.layers.Dense(
                hidden_dim, dtype=dtype, name="image_projection"
            ),
            "text_embedding": TokenAndPositionEmbedding(
                vocabulary_size,
                history_length + question_length,
                hidden_dim,
                # Unit-scale word vectors, like the (layer-normalized) image
                # tokens they are fused with: with a small init (0.02) Adam's
                # relative updates swamp them and only the answer prior is
                # learned (measured).
                embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
                dtype=dtype,
                name="text_embedding",
            ),
            "segments": SegmentEmbedding(3, dtype=dtype, name="segment_embedding"),
            "blocks": [
                TransformerEncoder(
                    intermediate_dim=intermediate_dim,
                    num_heads=num_heads,
                    dropout=dropout,
                    activation="gelu",
                    normalize_first=True,
                    dtype=dtype,
                    name=f"fusion_block_{i}",
                )
                for i in range(num_layers)
            ],
            "fusion_norm": keras.layers.LayerNormalization(
                epsilon=1e-5, dtype=dtype, name="fusion_norm"
            ),
            "image_encoder": image_encoder,
        }
        question_head = keras.layers.Dense(
            hidden_dim, dtype=dtype, name="question_head"
        )
        answer_head = keras.layers.Dense(hidden_dim, dtype=dtype, name="answer_head")
        decoder = CaptionDecoder(
            vocabulary_size=vocabulary_size,
            sequence_length=answer_length,
            hidden_dim=hidden_dim,
            num_layers=num_decoder_layers,
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            dropout=dropout,
            dtype=dtype,
            name="answer_decoder",
        )

        # === Functional graph ===
        images = image_like_input(image_encoder, "image_encoder", "images")
        text = {
            "history_ids": keras.Input(
                (history_length,), dtype="int32", name="history_ids"
            ),
            "question_ids": keras.Input(
                (question_length,), dtype="int32", name="question_ids"
            ),
        }
        candidate_ids = keras.Input((None, None), dtype="int32", name="candidate_ids")
        fused, mask = fuse_dialogue(layers, images, text, padding_token_id)
        question = masked_mean(fused[:, -question_length:], mask[:, -question_length:])
        query = question_head(question)
        words = layers["text_embedding"].token_embedding(candidate_ids)
        answers = answer_head(
            masked_mean(words, ops.not_equal(candidate_ids, padding_token_id))
        )
        scores = ops.einsum("bd,bnd->bn", query, answers) / math.sqrt(hidden_dim)
        outputs = {
            "candidate_scores": ops.cast(scores, "float32"),
            "context_tokens": fused,
            "context_mask": mask,
        }
        super().__init__(
            inputs={"images": images, **text, "candidate_ids": candidate_ids},
            outputs=outputs,
            dtype=dtype,
            **kwargs,
        )
        decoder.build((None, answer_length), tuple(fused.shape))

        # === Attributes ===
        self.image_encoder = image_encoder
        self.image_projection = layers["image_projection"]
        self.text_embedding = layers["text_embedding"]
        self.segment_embedding = layers["segments"]
        self.fusion_blocks = layers["blocks"]
        self.fusion_norm = layers["fusion_norm"]
        self.question_head = question_head
        self.answer_head = answer_head
        self.decoder = decoder
        self.image_shape = tuple(images.shape[1:])
        self.vocabulary_size = vocabulary_size
        self.history_length = history_length
        self.question_length = question_length
        self.answer_length = answer_length
        self.sequence_length = answer_length  # what `generate` may fill
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.num_decoder_layers = num_decoder_layers
        self.intermediate_dim = intermediate_dim
        self.dropout = float(dropout)
        self.ranking_weight = float(ranking_weight)
        self.generation_weight = float(generation_weight)
        self.start_token_id = start_token_id
        self.end_token_id = end_token_id
        self.padding_token_id = padding_token_id
        self._add_term_trackers(["ranking_loss", "generation_loss"])
        self._finish_init()

    def _fusion_layers(self):
        return {
            "image_projection": self.image_projection,
            "text_embedding": self.text_embedding,
            "segments": self.segment_embedding,
            "blocks": self.fusion_blocks,
            "fusion_norm": self.fusion_norm,
            "image_encoder": self.image_encoder,
        }

    # -------------------------------------------------------------------- loss
    def loss_terms(self, x, y=None, y_pred=None, training=False):
        terms = {}
        total = ops.zeros((), "float32")
        if self.ranking_weight > 0:
            if y is None:
                raise ValueError(
                    "DialogueModel: the ranking loss needs the index of the true "
                    "candidate of every example as `y` (e.g. `fit(inputs, "
                    "labels)`), or `ranking_weight=0`. Received: y=None"
                )
            labels = ops.reshape(ops.cast(y, "int32"), (-1,))
            ranking = ops.mean(
                keras.losses.sparse_categorical_crossentropy(
                    labels, y_pred["candidate_scores"], from_logits=True
                )
            )
            terms["ranking_loss"] = ranking
            total = total + self.ranking_weight * ranking
        if self.generation_weight > 0:
            if "answer_ids" not in x:
                raise ValueError(
                    "DialogueModel: the generation loss needs inputs['answer_ids'] "
                    "([START] answer [END]), or `generation_weight=0`. Received "
                    f"keys: {sorted(x)}"
                )
            answer_ids = x["answer_ids"]
            length = _shape(answer_ids)
            if len(length) != 2 or not (
                length[1] is None or 2 <= length[1] <= self.answer_length
            ):
                raise ValueError(
                    "DialogueModel: inputs['answer_ids'] must be (batch, T) with "
                    f"2 <= T <= answer_length={self.answer_length}. Received: "
                    f"answer_ids shape={length}"
                )
            logits = self.decoder(
                answer_ids,
                y_pred["context_tokens"],
                context_mask=y_pred["context_mask"],
                training=training,
            )
            generation = next_token_loss(
                logits, answer_ids, pad_id=self.padding_token_id
            )
            terms["generation_loss"] = generation
            total = total + self.generation_weight * generation
        terms["loss"] = total
        return terms

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
        return {
            "images": keras.Input(self.image_shape, name="images"),
            "history_ids": keras.Input(
                (self.history_length,), dtype="int32", name="history_ids"
            ),
            "question_ids": keras.Input(
                (self.question_length,), dtype="int32", name="question_ids"
            ),
        }

    def _generation_context(self, inputs):
        text = {k: inputs[k] for k in _TEXT_KEYS}
        return fuse_dialogue(
            self._fusion_layers(), inputs["images"], text, self.padding_token_id
        )

    def _check_generation_inputs(self, inputs):
        name = "DialogueModel.generate"
        if not isinstance(inputs, dict) or any(
            k not in inputs for k in ("images",) + _TEXT_KEYS
        ):
            keys = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(
                f"{name}: `inputs` must be a dict with 'images', 'history_ids' and "
                f"'question_ids'. Received: {keys}"
            )
        images = check_image_batch(name, inputs["images"], self.image_shape)
        out = {"images": images}
        for key, length in zip(_TEXT_KEYS, (self.history_length, self.question_length)):
            ids = np.asarray(keras.ops.convert_to_numpy(inputs[key]))
            if ids.shape != (len(images), length):
                raise ValueError(
                    f"{name}: inputs['{key}'] must have shape ({len(images)}, "
                    f"{length}). Received: {key} shape={ids.shape}"
                )
            out[key] = ids.astype("int32")
        return out

    # ------------------------------------------------------------------ config
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_encoder": keras.layers.serialize(self.image_encoder),
                "vocabulary_size": self.vocabulary_size,
                "history_length": self.history_length,
                "question_length": self.question_length,
                "answer_length": self.answer_length,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "num_decoder_layers": self.num_decoder_layers,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "ranking_weight": self.ranking_weight,
                "generation_weight": self.generation_weight,
                "start_token_id": self.start_token_id,
                "end_token_id": self.end_token_id,
                "padding_token_id": self.padding_token_id,
            }
        )
        return config
