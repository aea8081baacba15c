"""Cached autoregressive sampling of image tokens (temperature, top-k, top-p).

`ImageTokenSampler` runs the whole decoding loop of `TextToImage.generate` in
one `ops.fori_loop` inside a functional model, so `predict_on_batch` compiles
it (`tf.function`, `jax.jit`; a Python loop on torch). Randomness comes in as
uniform numbers drawn with NumPy from the user's seed: the same seed gives the
same samples on every backend (up to float rounding of near-ties).
"""

import keras
from keras import ops

from keras_mm.models.text_to_image.guidance import guide


def filter_and_sample(logits, uniforms, temperature, top_k, top_p):
    """One token per row from `(batch, K)` logits.

    Rows with `temperature == 0` take the arg-max (greedy). Otherwise the
    probabilities `softmax(logits / temperature)` are restricted to the
    `top_k` most likely tokens and to the smallest set whose mass reaches
    `top_p` (nucleus sampling, Holtzman et al., 2020), and a token is drawn by
    inverting their cumulative sum at `uniforms` (in [0, 1)).

    Args:
        logits: `(batch, K)` float.
        uniforms: `(batch,)` float in [0, 1).
        temperature: `(batch,)` float >= 0.
        top_k: `(batch,)` int in [1, K].
        top_p: `(batch,)` float in (0, 1].

    Returns:
        `(batch,)` int32 token indices.
    """
    logits = ops.cast(logits, "float32")
    num = ops.shape(logits)[-1]
    greedy = ops.cast(ops.argmax(logits, axis=-1), "int32")
    temperature = ops.cast(temperature, "float32")
    scaled = logits / ops.maximum(temperature, 1e-6)[:, None]
    probs = ops.softmax(scaled, axis=-1)
    ordered, _ = ops.top_k(probs, k=num)  # descending
    kth = ops.take_along_axis(ordered, ops.cast(top_k, "int32")[:, None] - 1, axis=-1)
    top_p = ops.cast(top_p, "float32")
    before = ops.cumsum(ordered, axis=-1) - ordered  # mass of the more likely ones
    count = ops.sum(ops.cast(ops.less(before, top_p[:, None]), "int32"), axis=-1)
    nucleus = ops.take_along_axis(ordered, ops.maximum(count, 1)[:, None] - 1, axis=-1)
    nucleus = ops.where(ops.greater_equal(top_p, 1.0)[:, None], 0.0, nucleus)
    keep = ops.logical_and(
        ops.greater_equal(probs, kth), ops.greater_equal(probs, nucleus)
    )
    kept = ops.where(keep, probs, 0.0)
    cdf = ops.cumsum(kept, axis=-1)
    target = ops.cast(uniforms, "float32")[:, None] * cdf[:, -1:]
    sampled = ops.sum(ops.cast(ops.less_equal(cdf, target), "int32"), axis=-1)
    sampled = ops.minimum(sampled, num - 1)
    return ops.where(ops.greater(temperature, 0.0), sampled, greedy)


class ImageTokenSampler(keras.layers.Layer):
    """Decode `num_tokens` image tokens after a text prompt with a KV cache.

    The prompt is run once (`CausalTransformer.prefill`); then each step
    samples an image token from the image-token logits and runs that single
    token against the cache (`CausalTransformer.step`).

    With `guided=True` every prompt is decoded twice, with its text and with
    the empty prompt, and tokens are drawn from the classifier-free guided
    logits (`guidance.guide`); both copies continue with the drawn token.

    Call arguments:
        prompt_ids: `(batch, text_length)` int32 text token ids.
        uniforms: `(batch, num_tokens)` float32 in [0, 1).
        temperature, top_k, top_p: `(batch,)` sampling settings (see
            `filter_and_sample`).
        guidance: `(batch,)` float guidance scale (used with `guided=True`).

    Returns:
        `(batch, num_tokens)` int32 image codes in `[0, num_codes)`.
    """

    def __init__(
        self, decoder, text_vocabulary_size, num_tokens, guided=False, **kwargs
    ):
        super().__init__(**kwargs)
        self.decoder = decoder
        self.offset = text_vocabulary_size
        self.num_tokens = num_tokens
        self.guided = guided

    def call(self, prompt_ids, uniforms, temperature, top_k, top_p, guidance=None):
        prompt_ids = ops.cast(prompt_ids, "int32")
        start = prompt_ids.shape[1]
        if self.guided:
            prompt_ids = ops.concatenate([prompt_ids, ops.zeros_like(prompt_ids)], 0)

        def image_logits(logits):
            logits = logits[:, self.offset :]
            return guide(logits, guidance) if self.guided else logits

        logits, cache = self.decoder.prefill(prompt_ids)
        current = image_logits(logits[:, -1])
        batch = ops.shape(uniforms)[0]
        codes = ops.zeros((batch, self.num_tokens), dtype="int32")
        slots = ops.arange(self.num_tokens, dtype="int32")[None, :]

        def body(i, state):
            codes, current, cache = state
            u = ops.take(uniforms, i, axis=1)
            token = filter_and_sample(current, u, temperature, top_k, top_p)
            codes = ops.where(ops.equal(slots, i), token[:, None], codes)
            feed = token[:, None] + self.offset
            if self.guided:
                feed = ops.concatenate([feed, feed], axis=0)
            logits, cache = self.decoder.step(feed, start + i, list(cache))
            return codes, image_logits(logits), tuple(cache)

        codes, _, _ = ops.fori_loop(
            0, self.num_tokens, body, (codes, current, tuple(cache))
        )
        return codes

    def compute_output_spec(self, prompt_ids, *args, **kwargs):
        return keras.KerasTensor((prompt_ids.shape[0], self.num_tokens), "int32")
