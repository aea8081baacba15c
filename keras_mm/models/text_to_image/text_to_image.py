import keras
import numpy as np
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.data._text import check_vocabulary, split_words
from keras_mm.models.model_utils import check_positive_int
from keras_mm.models.multimodal_model import MultimodalModel
from keras_mm.models.text_to_image.generation_settings import (
    check_generation_settings,
    is_int,
)
from keras_mm.models.text_to_image.guidance import (
    PromptDropout,
    check_prompt_dropout,
)
from keras_mm.models.text_to_image.image_tokenizer import ImageTokenizer
from keras_mm.models.text_to_image.sampling import ImageTokenSampler
from keras_mm.models.text_to_image.text_to_image_layers import CausalTransformer


class _SamplerCache:
    """A plain holder, so that Keras does not track the cached model as a layer."""

    def __init__(self):
        self.models = {}


def _masked_ce(logits, targets, weights=None):
    losses = keras.losses.sparse_categorical_crossentropy(
        targets, ops.cast(logits, "float32"), from_logits=True
    )
    if weights is None:
        return ops.mean(losses)
    weights = ops.cast(weights, "float32")
    return ops.sum(losses * weights) / ops.maximum(ops.sum(weights), 1.0)


@keras_mm_export("keras_mm.models.TextToImage")
class TextToImage(MultimodalModel):
    """DALL-E: a decoder-only transformer over text tokens then image tokens.

    Stage 2 of DALL-E (seed section 7.3.3; Ramesh et al., 2021). The text
    token ids (padded to `text_length`) and the frozen `image_tokenizer`'s
    `h * w` image codes (row-major, offset by the text vocabulary size) form
    one sequence `[text ; image]`, modelled by a causal transformer
    (`CausalTransformer`). `fit` minimises the cross-entropy of every image
    token given the text and the previous image tokens,

        loss = - mean_i log p(c_i | text, c_<i)
               - text_loss_weight * mean_t log p(w_{t+1} | w_<=t)

    (the text term over real, non-padding words). `generate` samples image
    tokens with a key/value cache (temperature, top-k, top-p; temperature 0 is
    greedy), decodes them with the tokenizer and, given a CLIP model, keeps the
    samples CLIP ranks highest for the prompt, as DALL-E did.

    With `prompt_dropout > 0`, training shows that fraction of the examples
    with the empty prompt, and `generate(guidance_scale=s)` samples with
    classifier-free guidance (`guidance.py`; Ho & Salimans, 2022).

    Prompts are lower-cased and split into words like the training captions;
    a word outside `vocabulary`, an empty prompt or one longer than
    `text_length` words raises a `ValueError` (no silent `[UNK]`).

    Args:
        image_tokenizer: a trained `ImageTokenizer`; it is frozen
            (`trainable = False`) and saved with this model.
        vocabulary: list of str. Text vocabulary (index = id; `"[PAD]"` = 0,
            `"[UNK]"` present), as `keras_mm.data.build_vocabulary` makes.
        text_length: int. Text tokens per example (padded with 0).
        hidden_dim: int. Transformer width; divisible by `num_heads`.
        num_layers: int. Transformer blocks.
        num_heads: int.
        intermediate_dim: int or None. Feed-forward width (None = 4 * hidden_dim).
        dropout: float in [0, 1).
        text_loss_weight: float >= 0. Weight of the text next-token loss
            (over every example, also those whose prompt was dropped).
        prompt_dropout: float in [0, 1). Fraction of training examples whose
            prompt is replaced by the empty prompt (classifier-free guidance).
        dtype: dtype policy of the transformer.
        **kwargs: `name`, `trainable`.

    Call arguments:
        inputs: dict with `"token_ids"` `(batch, text_length)` int and
            `"image_codes"` `(batch, h, w)` int (`image_tokenizer.encode`).

    Returns:
        `{"logits": (batch, text_length + h * w, len(vocabulary) + num_codes)}`;
        position `t` predicts token `t + 1`.

    Example:

    >>> tokenizer = ImageTokenizer((16, 16, 3), num_codes=8, code_dim=4,
    ...     hidden_dim=8, num_downsamples=2)
    >>> model = TextToImage(tokenizer, ["[PAD]", "[UNK]", "a", "red", "circle"],
    ...     text_length=4, hidden_dim=16, num_layers=1, num_heads=2)
    >>> model.generate(["a red circle"], num_samples=2, seed=0).shape
    (2, 16, 16, 3)

    Reference:
        Ramesh et al., 2021, "Zero-Shot Text-to-Image Generation"; Radford et
        al., 2021 (CLIP re-ranking); seed section 7.3.3.
    """

    _nested_layer_keys = ("image_tokenizer",)

    def __init__(
        self,
        image_tokenizer,
        vocabulary,
        text_length=10,
        hidden_dim=64,
        num_layers=2,
        num_heads=4,
        intermediate_dim=None,
        dropout=0.0,
        text_loss_weight=0.0,
        prompt_dropout=0.0,
        dtype=None,
        **kwargs,
    ):
        if not isinstance(image_tokenizer, ImageTokenizer):
            raise ValueError(
                "`image_tokenizer` must be a keras_mm.models.ImageTokenizer. "
                f"Received: image_tokenizer of type {type(image_tokenizer).__name__}"
            )
        vocabulary = list(check_vocabulary(vocabulary))
        check_positive_int("text_length", text_length)
        check_positive_int("hidden_dim", hidden_dim)
        if intermediate_dim is None:
            intermediate_dim = 4 * hidden_dim
        if not float(text_loss_weight) >= 0:
            raise ValueError(
                "`text_loss_weight` must be >= 0. Received: "
                f"text_loss_weight={text_loss_weight!r}"
            )
        prompt_dropout = check_prompt_dropout(prompt_dropout)
        image_tokenizer.freeze()
        grid = image_tokenizer.grid_shape
        num_image_tokens = grid[0] * grid[1]
        text_vocabulary_size = len(vocabulary)
        decoder = CausalTransformer(
            vocabulary_size=text_vocabulary_size + image_tokenizer.num_codes,
            sequence_length=text_length + num_image_tokens,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            dropout=dropout,
            dtype=dtype,
            name="transformer",
        )

        # === Functional graph ===
        token_ids = keras.Input((text_length,), dtype="int32", name="token_ids")
        image_codes = keras.Input(grid, dtype="int32", name="image_codes")
        flat = ops.reshape(image_codes, (-1, num_image_tokens)) + text_vocabulary_size
        prompt = ops.cast(token_ids, "int32")
        if prompt_dropout:  # (no layer at 0, so older models load unchanged)
            prompt = PromptDropout(prompt_dropout, name="prompt_dropout")(prompt)
        sequence = ops.concatenate([prompt, flat], axis=1)
        logits = decoder(sequence)
        super().__init__(
            inputs={"token_ids": token_ids, "image_codes": image_codes},
            outputs={"logits": logits},
            dtype=dtype,
            **kwargs,
        )

        # === Attributes ===
        self.image_tokenizer = image_tokenizer
        self.transformer = decoder
        self.vocabulary = vocabulary
        self.text_length = text_length
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = float(dropout)
        self.text_loss_weight = float(text_loss_weight)
        self.prompt_dropout = prompt_dropout
        self.text_vocabulary_size = text_vocabulary_size
        self.num_image_tokens = num_image_tokens
        self._add_term_trackers(["image_loss", "text_loss"])
        self._finish_init()

    # -------------------------------------------------------------------- loss
    def loss_terms(self, x, y=None, y_pred=None, training=False):
        logits = y_pred["logits"]
        start, vocab = self.text_length, self.text_vocabulary_size
        codes = ops.reshape(
            ops.cast(x["image_codes"], "int32"), (-1, self.num_image_tokens)
        )
        image_logits = logits[:, start - 1 : start - 1 + self.num_image_tokens, vocab:]
        image_loss = _masked_ce(image_logits, codes)
        token_ids = ops.cast(x["token_ids"], "int32")
        if start > 1:
            targets = token_ids[:, 1:]
            text_loss = _masked_ce(
                logits[:, : start - 1, :vocab], targets, ops.not_equal(targets, 0)
            )
        else:
            text_loss = ops.zeros((), "float32")
        loss = image_loss + self.text_loss_weight * text_loss
        return {"loss": loss, "image_loss": image_loss, "text_loss": text_loss}

    # ------------------------------------------------------------------ prompts
    def tokenize(self, prompts):
        """Token ids `(P, text_length)` int32 of a list of prompt strings."""
        name = "TextToImage"
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts:
            raise ValueError(f"{name}: `prompts` must not be empty. Received: []")
        lookup = {w: i for i, w in enumerate(self.vocabulary)}
        ids = np.zeros((len(prompts), self.text_length), dtype="int32")
        for row, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise ValueError(
                    f"{name}: every prompt must be a string. Received: "
                    f"prompts[{row}] of type {type(prompt).__name__}"
                )
            words = split_words(prompt)
            if not words:
                raise ValueError(
                    f"{name}: `prompts` holds an empty prompt (no words). "
                    f"Received: prompts[{row}]={prompt!r}"
                )
            unknown = [w for w in words if w not in lookup or lookup[w] < 2]
            if unknown:
                raise ValueError(
                    f"{name}: `prompts` uses words outside the model's vocabulary "
                    f"({len(self.vocabulary)} words, e.g. {self.vocabulary[2:8]}). "
                    f"Received: prompts[{row}]={prompt!r} with unknown {unknown}"
                )
            if len(words) > self.text_length:
                raise ValueError(
                    f"{name}: a prompt may have at most text_length="
                    f"{self.text_length} words. Received: prompts[{row}]={prompt!r} "
                    f"with {len(words)} words"
                )
            ids[row, : len(words)] = [lookup[w] for w in words]
        return ids

    # -------------------------------------------------------------- generation
    def _sampler(self, guided):
        if not hasattr(self, "_sampler_cache"):
            object.__setattr__(self, "_sampler_cache", _SamplerCache())
        if guided not in self._sampler_cache.models:
            n = self.num_image_tokens
            inputs = {
                "prompt_ids": keras.Input(
                    (self.text_length,), dtype="int32", name="prompt_ids"
                ),
                "uniforms": keras.Input((n,), dtype="float32", name="uniforms"),
                "temperature": keras.Input((), dtype="float32", name="temperature"),
                "top_k": keras.Input((), dtype="int32", name="top_k"),
                "top_p": keras.Input((), dtype="float32", name="top_p"),
                "guidance": keras.Input((), dtype="float32", name="guidance"),
            }
            sampler = ImageTokenSampler(
                self.transformer,
                self.text_vocabulary_size,
                n,
                guided=guided,
                name="sampler",
            )
            codes = sampler(**inputs)
            self._sampler_cache.models[guided] = keras.Model(
                inputs, codes, name="sampler"
            )
        return self._sampler_cache.models[guided]

    def sample_codes(
        self,
        token_ids,
        uniforms,
        temperature=1.0,
        top_k=None,
        top_p=None,
        guidance_scale=None,
    ):
        """Image codes `(batch, h, w)` int32 for prompt token ids (checked
        settings, see `generate`); `uniforms` `(batch, h * w)` in [0, 1)."""
        batch = len(token_ids)
        num_codes = self.image_tokenizer.num_codes
        guided = guidance_scale is not None
        feed = {
            "prompt_ids": np.asarray(token_ids, "int32"),
            "uniforms": np.asarray(uniforms, "float32"),
            "temperature": np.full(batch, temperature, "float32"),
            "top_k": np.full(batch, num_codes if top_k is None else top_k, "int32"),
            "top_p": np.full(batch, 1.0 if top_p is None else top_p, "float32"),
            "guidance": np.full(batch, guidance_scale if guided else 1, "float32"),
        }
        codes = self._sampler(guided).predict_on_batch(feed)
        codes = np.asarray(ops.convert_to_numpy(codes), dtype="int32")
        return codes.reshape((batch,) + self.image_tokenizer.grid_shape)

    def generate(
        self,
        prompts,
        num_samples=1,
        temperature=1.0,
        top_k=None,
        top_p=None,
        seed=None,
        rerank=None,
        keep=None,
        batch_size=64,
        return_codes=False,
        guidance_scale=None,
    ):
        """Sample images for text prompts.

        Args:
            prompts: str or list of str, e.g. `["a red circle"]`.
            num_samples: int >= 1. Samples drawn per prompt.
            temperature: float >= 0. Softmax temperature; 0 = greedy (arg-max).
            top_k: None or int. Sample among the `top_k` likeliest codes.
            top_p: None or float in (0, 1]. Nucleus sampling mass.
            seed: None or int. The same seed gives the same samples.
            rerank: None or a `CLIP` model with a `vocabulary`: score every
                sample against its prompt and return the best first.
            keep: int or None. Samples returned per prompt (None: 1 with
                `rerank`, else `num_samples`).
            batch_size: int. Sequences decoded per compiled call.
            return_codes: bool. Also return the image codes `(N, h, w)`.
            guidance_scale: None or float >= 0. Classifier-free guidance scale
                `s` (a model trained with `prompt_dropout > 0`); None or 1 is
                plain conditional sampling, larger follows the prompt more.

        Returns:
            Images `(len(prompts) * keep, H, W, 3)` float32 in [0, 1], grouped
            by prompt (and the codes, with `return_codes`).
        """
        keep = check_generation_settings(
            self, num_samples, temperature, top_k, top_p, keep, rerank, guidance_scale
        )
        if not is_int(batch_size) or batch_size < 1:
            raise ValueError(
                "TextToImage.generate: `batch_size` must be an integer >= 1. "
                f"Received: batch_size={batch_size!r}"
            )
        if isinstance(prompts, str):
            prompts = [prompts]
        token_ids = np.repeat(self.tokenize(prompts), num_samples, axis=0)
        rng = np.random.default_rng(seed)
        uniforms = rng.random((len(token_ids), self.num_image_tokens), dtype="float32")
        codes = np.concatenate(
            [
                self.sample_codes(
                    token_ids[lo : lo + batch_size],
                    uniforms[lo : lo + batch_size],
                    float(temperature),
                    top_k,
                    top_p,
                    guidance_scale,
                )
                for lo in range(0, len(token_ids), batch_size)
            ]
        )
        images = self.image_tokenizer.decode(codes, batch_size=batch_size)
        order = np.arange(len(codes)).reshape(len(prompts), num_samples)
        if rerank is not None:
            scores = self.clip_scores(rerank, prompts, images).reshape(order.shape)
            order = np.take_along_axis(order, np.argsort(-scores, axis=1), axis=1)
        order = order[:, :keep].reshape(-1)
        if return_codes:
            return images[order], codes[order]
        return images[order]

    @staticmethod
    def clip_scores(clip, prompts, images):
        """Cosine similarity of each image to its prompt, `(len(images),)`.

        `images` holds `len(images) // len(prompts)` samples per prompt, grouped
        by prompt. `clip` needs a `vocabulary` to read the prompts.
        """
        if getattr(clip, "vocabulary", None) is None:
            raise ValueError(
                "TextToImage.generate: the `rerank` CLIP model has no `vocabulary` "
                "to read the prompts with. Received: rerank.vocabulary=None"
            )
        shape = tuple(clip.image_shape) if hasattr(clip, "image_shape") else None
        if shape is None:
            shape = tuple(clip._inputs_struct["images"].shape[1:])
        if tuple(images.shape[1:]) != shape:
            raise ValueError(
                "TextToImage.generate: the `rerank` CLIP model takes images of "
                f"shape {shape}. Received: samples of shape {tuple(images.shape[1:])}"
            )
        text = clip.encode_text(list(prompts))
        image = clip.encode_image(images)
        per_prompt = len(images) // len(prompts)
        text = np.repeat(np.asarray(text), per_prompt, axis=0)
        return np.sum(np.asarray(image) * text, axis=-1)

    # ------------------------------------------------------------------ config
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_tokenizer": keras.layers.serialize(self.image_tokenizer),
                "vocabulary": list(self.vocabulary),
                "text_length": self.text_length,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "text_loss_weight": self.text_loss_weight,
                "prompt_dropout": self.prompt_dropout,
            }
        )
        return config
