import keras
import numpy as np
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.data._text import check_vocabulary
from keras_mm.data.encode_texts import encode_texts
from keras_mm.distribute import collectives
from keras_mm.layers import ContrastiveLogits, ProjectionHead
from keras_mm.losses import (
    clip_loss,
    clip_loss_from_embeddings,
    siglip_loss,
    siglip_loss_from_embeddings,
)
from keras_mm.models.clip.clip_presets import clip_presets
from keras_mm.models.model_utils import (
    call_text_encoder,
    check_choice,
    check_positive_int,
    image_like_input,
    pooled_features,
    text_inputs,
)
from keras_mm.models.multimodal_model import MultimodalModel

LOSSES = ("clip", "siglip")
POOLINGS = ("mean", "first")


def contrastive_head(loss, init_scale, max_scale, dtype, name):
    """A `ContrastiveLogits` with CLIP's or SigLIP's initialisation."""
    if loss == "siglip":
        return ContrastiveLogits(
            init_scale=10.0 if init_scale is None else init_scale,
            max_scale=max_scale,
            init_bias=-10.0,
            dtype=dtype,
            name=name,
        )
    return ContrastiveLogits(
        init_scale=1 / 0.07 if init_scale is None else init_scale,
        max_scale=max_scale,
        dtype=dtype,
        name=name,
    )


def contrastive_loss(loss, logits, labels=None):
    return (
        siglip_loss(logits, labels) if loss == "siglip" else clip_loss(logits, labels)
    )


def embedding_contrastive_loss(loss, head, x, y, labels=None, tile_size=None):
    """CLIP's or SigLIP's loss of `head`'s logits of `x @ y^T`, optionally tiled."""
    if loss == "siglip":
        return siglip_loss_from_embeddings(
            x, y, head.scale, head.bias, labels=labels, tile_size=tile_size
        )
    return clip_loss_from_embeddings(
        x, y, head.scale, labels=labels, tile_size=tile_size
    )


def _is_strings(value):
    """Whether `value` is a non-empty list/tuple/array of str."""
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "US" and value.ndim == 1
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(isinstance(v, str) for v in value)
    )


def _is_prompts(value):
    """Whether zero-shot `class_embeddings` are prompts rather than embeddings."""
    if isinstance(value, dict) or isinstance(value, str):
        return True
    if isinstance(value, (list, tuple)) and value and not hasattr(value[0], "shape"):
        flat = value
        while isinstance(flat, (list, tuple)) and flat:
            flat = flat[0]
        if isinstance(flat, str):
            return True
    kind = np.asarray(value).dtype.kind
    return kind in "iuUSO"


@keras_mm_export("keras_mm.models.CLIP")
class CLIP(MultimodalModel):
    """Contrastive language-image pre-training (CLIP / SigLIP), trainable with `fit`.

    Seed sections 3.2.1 and 5.2.1, done right: the seed's listing returns the mean
    cosine similarity of all pairs, which is not a loss (maximising it collapses
    every embedding onto one point). Here an image encoder and a text encoder are
    followed by projection heads to a shared `embed_dim` space with L2-normalised
    outputs, and `compute_loss` applies the symmetric InfoNCE loss of seed 4.1.2
    (`loss="clip"`) or SigLIP's pairwise sigmoid loss (`loss="siglip"`) to the
    logits `z = min(exp(s), max_scale) * x y^T (+ b)` of a learnable temperature
    (`keras_mm.layers.ContrastiveLogits`). `compile(optimizer=...)` +
    `fit(x)` trains it with no labels; optional `y` of `(batch,)` group ids marks
    every pair with equal ids as a positive (duplicate captions in a batch), and
    a `(batch, batch)` 0/1 `y` marks the positive pairs directly.

    Encoders are any functional Keras models: keras_mm's `ImageEncoder` and
    `TextEncoder`, keras-hub backbones (`ViTBackbone`, `BertBackbone`, ...), or
    your own. Dict outputs give `pooled_output` (else `sequence_output`); token
    sequences are pooled by `image_pooling` / `text_pooling` (the text mean skips
    padding). A keras-hub `segment_ids` input is filled with zeros.

    Args:
        image_encoder: `keras.Model` from images `(batch, H, W, C)` to features.
        text_encoder: `keras.Model` from `token_ids` (or a dict with
            `"token_ids"` and e.g. `"padding_mask"`) to features.
        embed_dim: int. Size of the shared embedding space.
        loss: `"clip"` (softmax InfoNCE) or `"siglip"` (pairwise sigmoid).
        projection_hidden_dim: int or None. Hidden width of the projection heads.
        image_pooling: `"mean"` or `"first"`, for sequence image features.
        text_pooling: `"mean"` or `"first"`, for sequence text features.
        init_scale: float or None. Initial logit scale; None picks `1/0.07`
            (clip) or `10` with bias `-10` (siglip).
        max_scale: float. Clamp of the logit scale (CLIP uses 100).
        vocabulary: list of str or None. The word vocabulary of the token ids
            (index = id, `"[PAD]"` first, as `keras_mm.data.build_vocabulary`
            makes). Kept in the config, so `encode_text` and
            `build_zero_shot_weights` accept strings, tokenised with
            `keras_mm.data.encode_texts`.
        tile_size: int or None. If set, the loss is computed `tile_size` image
            rows at a time and never forms the `(B, B)` logits, so its memory
            grows linearly in the batch (same value and gradients; see
            `keras_mm.losses.clip_loss_from_embeddings` and docs/distributed.md).
        dtype: dtype policy of the projection heads (e.g. `"mixed_bfloat16"`);
            the loss is always computed in float32.
        **kwargs: `name`, `trainable`.

    Call arguments:
        inputs: dict with `"images"`, `"token_ids"` and the text encoder's other
            inputs (e.g. `"padding_mask"`, derived from `token_ids` when the
            text encoder has a `pad_token_id`), all with one batch size. A
            batch needs at least 2 examples (`fit`/`evaluate` refuse fewer).

    Returns:
        A dict `{"image_embeddings", "text_embeddings"}` of unit-norm
        `(batch, embed_dim)` tensors.

    Example:

    >>> from keras_mm.models import CLIP  # doctest: +SKIP
    >>> model = CLIP(image_encoder, text_encoder, embed_dim=32)  # doctest: +SKIP
    >>> model.compile(optimizer="adam")  # doctest: +SKIP
    >>> model.fit(image_text_dataset, epochs=3)  # doctest: +SKIP
    >>> weights = model.build_zero_shot_weights(class_prompts)  # doctest: +SKIP
    >>> labels = model.zero_shot_predict(images, weights).argmax(-1)  # doctest: +SKIP

    Reference:
        Radford et al., 2021, "Learning Transferable Visual Models From Natural
        Language Supervision"; Zhai et al., 2023 (SigLIP); seed 3.2.1, 5.2.1.
    """

    _nested_layer_keys = ("image_encoder", "text_encoder")
    presets = clip_presets
    min_batch_size = 2

    def __init__(
        self,
        image_encoder,
        text_encoder,
        embed_dim=64,
        loss="clip",
        projection_hidden_dim=None,
        image_pooling="mean",
        text_pooling="mean",
        init_scale=None,
        max_scale=100.0,
        tile_size=None,
        vocabulary=None,
        dtype=None,
        **kwargs,
    ):
        check_positive_int("embed_dim", embed_dim)
        if vocabulary is not None:
            vocabulary = list(check_vocabulary(vocabulary))
            size = getattr(text_encoder, "vocabulary_size", None)
            if isinstance(size, int) and len(vocabulary) > size:
                raise ValueError(
                    f"`vocabulary` has more tokens ({len(vocabulary)}) than the text "
                    f"encoder's vocabulary_size={size}. Received: "
                    f"len(vocabulary)={len(vocabulary)}"
                )
        if tile_size is not None:
            check_positive_int("tile_size", tile_size)
        check_choice("loss", loss, LOSSES)
        check_choice("image_pooling", image_pooling, POOLINGS)
        check_choice("text_pooling", text_pooling, POOLINGS)

        # === Layers ===
        image_projection = ProjectionHead(
            embed_dim,
            hidden_dim=projection_hidden_dim,
            dtype=dtype,
            name="image_projection",
        )
        text_projection = ProjectionHead(
            embed_dim,
            hidden_dim=projection_hidden_dim,
            dtype=dtype,
            name="text_projection",
        )

        # === Functional graph ===
        images = image_like_input(image_encoder, "image_encoder", "images")
        text = text_inputs(text_encoder)
        image_features = pooled_features(image_encoder(images), image_pooling)
        text_features = pooled_features(
            call_text_encoder(text_encoder, text),
            text_pooling,
            mask=text.get("padding_mask"),
        )
        outputs = {
            "image_embeddings": image_projection(image_features),
            "text_embeddings": text_projection(text_features),
        }
        super().__init__(
            inputs={"images": images, **text}, outputs=outputs, dtype=dtype, **kwargs
        )

        # === Attributes (after super().__init__, for torch) ===
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.image_projection = image_projection
        self.text_projection = text_projection
        self.embed_dim = embed_dim
        self.loss_name = loss
        self.projection_hidden_dim = projection_hidden_dim
        self.image_pooling = image_pooling
        self.text_pooling = text_pooling
        self.init_scale = init_scale
        self.max_scale = max_scale
        self.tile_size = tile_size
        self._vocabulary = vocabulary
        self.logits_head = contrastive_head(
            loss, init_scale, max_scale, self.dtype_policy, "logits_head"
        )
        self.logits_head.build((None, embed_dim), (None, embed_dim))
        self._finish_init()

    # ------------------------------------------------------------------ loss
    def loss_terms(self, x, y=None, y_pred=None, training=False):
        """The contrastive loss; `y`: None, `(batch,)` group ids or positives.

        Data-parallel replicas first gather every replica's embeddings (in
        float32, as the loss uses them) and `y`
        (`keras_mm.distribute.collectives.all_gather`): the loss of the global
        batch, with its negatives (docs/distributed.md). A matrix of positives
        then holds a replica's rows of the global batch's matrix,
        `(local batch, global batch)`, as splitting the global batch's `y` on
        its first axis gives.
        """
        local_batch = y_pred["image_embeddings"].shape[0]
        image_embeddings, text_embeddings = (
            collectives.all_gather(ops.cast(y_pred[key], "float32"))
            for key in ("image_embeddings", "text_embeddings")
        )
        if y is not None:
            replicas = collectives.replica_count()
            shape = tuple(getattr(y, "shape", ()))
            if len(shape) == 2 and replicas > 1 and None not in (local_batch, shape[1]):
                if shape[1] != replicas * local_batch:
                    raise ValueError(
                        "Under data parallelism a positives matrix `y` must hold "
                        "this replica's rows of the global batch's matrix, shape "
                        f"({local_batch}, {replicas * local_batch}); received {shape}"
                    )
            y = keras.tree.map_structure(collectives.all_gather, y)
        loss = embedding_contrastive_loss(
            self.loss_name,
            self.logits_head,
            image_embeddings,
            text_embeddings,
            labels=y,
            tile_size=self.tile_size,
        )
        return {"loss": loss}

    def similarity(self, image_embeddings, text_embeddings):
        """Scaled float32 logits `(B_image, B_text)` of the learned temperature."""
        return self.logits_head(image_embeddings, text_embeddings)

    # ----------------------------------------------------------------- towers
    @property
    def text_input_keys(self):
        return [k for k in self._inputs_struct if k != "images"]

    def image_tower(self):
        """A new `keras.Model` images -> image embeddings (shared layers)."""
        return self.submodel(["images"], "image_embeddings")

    def text_tower(self):
        """A new `keras.Model` text inputs (dict) -> text embeddings (shared layers)."""
        return self.submodel(self.text_input_keys, "text_embeddings")

    @property
    def vocabulary(self):
        """list of str or None: the vocabulary that tokenises strings."""
        return self._vocabulary

    @vocabulary.setter
    def vocabulary(self, vocabulary):
        self._vocabulary = None if vocabulary is None else check_vocabulary(vocabulary)

    def _sequence_length(self):
        length = self._inputs_struct["token_ids"].shape[1]
        if length is None:
            length = getattr(self.text_encoder, "max_sequence_length", None)
        return length

    def tokenize(self, texts):
        """Token ids (and padding mask) of a list of str, with `vocabulary`.

        Returns:
            A dict `{"token_ids": (N, T) int32, "padding_mask": (N, T) bool}`,
            `T` the text encoder's (maximum) sequence length.
        """
        name = self.__class__.__name__
        if self.vocabulary is None:
            raise ValueError(
                f"{name}: strings need a vocabulary to be turned into token ids, "
                f"and this model has none. Build it with `{name}(..., "
                "vocabulary=vocabulary)` (the list that encoded the training "
                "captions, e.g. from `keras_mm.data.build_vocabulary`), set "
                "`model.vocabulary = vocabulary`, or pass token ids from "
                "`keras_mm.data.encode_texts(texts, vocabulary, sequence_length)`. "
                f"Received: {len(texts)} string(s), e.g. {texts[0]!r}"
            )
        length = self._sequence_length()
        if length is None:
            length = max(1, *(len(t.split()) for t in texts))
        return encode_texts(texts, self.vocabulary, length)

    def _text_dict(self, text):
        if _is_strings(text):
            text = self.tokenize(list(text))
        if not isinstance(text, dict):
            text = {"token_ids": text}
        text = self._fill_inputs(dict(text))
        missing = [k for k in self.text_input_keys if k not in text]
        if missing:
            shapes = {k: tuple(np.shape(v)) for k, v in text.items()}
            raise ValueError(
                f"{self.__class__.__name__}: text inputs are missing the key(s) "
                f"{missing}. Expected keys: {self.text_input_keys}. Received: "
                f"shapes={shapes}"
            )
        return {k: text[k] for k in self.text_input_keys}

    def _encode_tower(self, output_key):
        """The tower `encode_*` predicts with, built once per model.

        A new tower per call would compile a new predict function per call (on
        JAX and TensorFlow, most of an encode call's time for a few batches).
        The dict is kept out of Keras' (and torch's) attribute tracking: the
        tower shares this model's layers and is not part of its state.
        """
        towers = self.__dict__.get("_encode_towers")
        if towers is None:
            towers = {}
            object.__setattr__(self, "_encode_towers", towers)
        if output_key not in towers:
            towers[output_key] = (
                self.image_tower()
                if output_key == "image_embeddings"
                else self.text_tower()
            )
        return towers[output_key]

    def encode_image(self, images, batch_size=256):
        """Unit-norm image embeddings `(N, embed_dim)` as a NumPy array."""
        images = self.check_input("images", images)
        tower = self._encode_tower("image_embeddings")
        return self._predict_with(tower, images, batch_size)

    def encode_text(self, text, batch_size=256):
        """Unit-norm text embeddings `(N, embed_dim)` as a NumPy array.

        `text` is `token_ids`, a dict with the text input keys (a missing
        `padding_mask` is derived from the text encoder's `pad_token_id`), or
        a list of str when the model has a `vocabulary`.
        """
        text = {k: self.check_input(k, v) for k, v in self._text_dict(text).items()}
        tower = self._encode_tower("text_embeddings")
        return self._predict_with(tower, text, batch_size)

    # ---------------------------------------------------------------- zero-shot
    def build_zero_shot_weights(self, prompts, batch_size=256):
        """Class embeddings `(num_classes, embed_dim)` from templated prompts.

        Every class is described by `num_templates` prompts ("a photo of a
        {}", "a {} shape", ...). Their text embeddings are averaged per class and
        re-normalised, as in CLIP's zero-shot evaluation.

        Args:
            prompts: `token_ids` of shape `(num_classes, num_templates, length)`
                (or `(num_classes, length)` for one template), a dict of such
                arrays with the text input keys (`"token_ids"`, `"padding_mask"`),
                or, with a `vocabulary`, a list of `num_classes` str (one
                template) or of `num_classes` lists of `num_templates` str.
            batch_size: int. Batch size of the text encoding.

        Returns:
            float32 NumPy array `(num_classes, embed_dim)` of unit rows.
        """
        if (
            isinstance(prompts, (list, tuple))
            and prompts
            and all(_is_strings(p) for p in prompts)
        ):
            counts = {len(p) for p in prompts}
            if len(counts) != 1:
                raise ValueError(
                    f"{self.__class__.__name__}: every class needs the same number "
                    f"of prompts. Received: prompts per class={sorted(counts)}"
                )
            encoded = self.tokenize([t for p in prompts for t in p])
            shape = (len(prompts), counts.pop(), -1)
            prompts = {k: v.reshape(shape) for k, v in encoded.items()}
        elif _is_strings(prompts):
            prompts = self.tokenize(list(prompts))
        prompts = self._text_dict(prompts)
        shape = np.shape(prompts["token_ids"])
        if len(shape) == 2:
            shape = (shape[0], 1, shape[1])
        if len(shape) != 3:
            raise ValueError(
                f"{self.__class__.__name__}: prompt `token_ids` must have shape "
                "(num_classes, num_templates, length). Received: token_ids "
                f"shape={tuple(np.shape(prompts['token_ids']))}"
            )
        flat = {
            k: np.reshape(np.asarray(v), (shape[0] * shape[1], shape[2]))
            for k, v in prompts.items()
        }
        if 0 in shape:
            raise ValueError(
                f"{self.__class__.__name__}: `prompts` must hold at least one "
                f"class and one prompt. Received: token_ids shape={shape}"
            )
        embeddings = self.encode_text(flat, batch_size=batch_size).astype("float32")
        embeddings = embeddings.reshape(shape[0], shape[1], -1).mean(axis=1)
        norms = np.maximum(np.linalg.norm(embeddings, axis=-1, keepdims=True), 1e-6)
        return embeddings / norms

    def zero_shot_predict(self, images, class_embeddings, batch_size=256):
        """Class probabilities `(N, num_classes)` for `images` (NumPy).

        `class_embeddings` as for `zero_shot_classifier`.
        """
        images = self.check_input("images", images)
        classifier = self.zero_shot_classifier(class_embeddings)
        return self._predict_with(classifier, images, batch_size)

    def zero_shot_classifier(self, class_embeddings):
        """A `keras.Model` images -> class probabilities (softmax over classes).

        Args:
            class_embeddings: float `(num_classes, embed_dim)` array from
                `build_zero_shot_weights`, or the prompts themselves (then
                `build_zero_shot_weights` is called first): a dict, integer
                `token_ids` of rank 2 or 3, or strings. The dtype decides, not
                the shape: an integer array is always token ids, also when its
                length equals `embed_dim`.
        """
        if _is_prompts(class_embeddings):
            class_embeddings = self.build_zero_shot_weights(class_embeddings)
        weights = np.asarray(class_embeddings)
        if weights.dtype.kind != "f":
            raise ValueError(
                f"{self.__class__.__name__}: `class_embeddings` must be a float "
                f"(num_classes, {self.embed_dim}) array, or prompts (a dict, "
                "integer token ids or strings). Received: class_embeddings "
                f"dtype={weights.dtype}, shape={weights.shape}"
            )
        weights = weights.astype("float32")
        if weights.ndim != 2 or weights.shape[1] != self.embed_dim:
            raise ValueError(
                f"{self.__class__.__name__}: `class_embeddings` must have shape "
                f"(num_classes, {self.embed_dim}). Received: class_embeddings "
                f"shape={weights.shape}"
            )
        scale = float(ops.convert_to_numpy(self.logits_head.scale))
        tower = self.image_tower()
        images = keras.Input(
            tuple(self._inputs_struct["images"].shape[1:]), name="images"
        )
        classes = keras.layers.Dense(
            weights.shape[0],
            use_bias=False,
            trainable=False,
            dtype="float32",
            name="class_embeddings",
        )
        logits = classes(ops.cast(tower(images), "float32"))
        classes.set_weights([scale * weights.T])
        probabilities = keras.layers.Softmax(dtype="float32", name="probabilities")(
            logits
        )
        return keras.Model(images, probabilities, name=f"{self.name}_zero_shot")

    # ------------------------------------------------------------------ config
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_encoder": keras.layers.serialize(self.image_encoder),
                "text_encoder": keras.layers.serialize(self.text_encoder),
                "embed_dim": self.embed_dim,
                "loss": self.loss_name,
                "projection_hidden_dim": self.projection_hidden_dim,
                "image_pooling": self.image_pooling,
                "text_pooling": self.text_pooling,
                "init_scale": self.init_scale,
                "max_scale": self.max_scale,
                "tile_size": self.tile_size,
                "vocabulary": None
                if self.vocabulary is None
                else list(self.vocabulary),
            }
        )
        return config
