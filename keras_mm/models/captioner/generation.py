"""Teacher-forced loss and compiled greedy / beam decoding for text decoders.

`TokenGenerator` runs greedy or beam decoding with a `CaptionDecoder` inside one
`ops.fori_loop`, so the whole loop is traced once and compiled by the backend's
predict function (`tf.function` on TensorFlow, `jax.jit` on JAX; a Python loop
on torch). `GenerationMixin` gives a model a checked `generate` method.
"""

import keras
import numpy as np
from keras import ops

STRATEGIES = ("greedy", "beam")
# Score of an impossible beam: finite, so that sums never produce NaN.
_NEG = -1.0e9


def next_token_loss(logits, token_ids, padding_mask=None, pad_id=0):
    """Masked next-token cross-entropy in float32: logits[:, t] predicts ids[:, t+1].

    The mean is over the real target tokens of the batch (`padding_mask[:, 1:]`,
    or `token_ids != pad_id`).
    """
    logits = ops.cast(logits[:, :-1], "float32")
    targets = token_ids[:, 1:]
    if padding_mask is None:
        weights = ops.cast(ops.not_equal(targets, pad_id), "float32")
    else:
        weights = ops.cast(padding_mask[:, 1:], "float32")
    losses = keras.losses.sparse_categorical_crossentropy(
        targets, logits, from_logits=True
    )
    return ops.sum(losses * weights) / ops.maximum(ops.sum(weights), 1.0)


class TokenGenerator(keras.layers.Layer):
    """Greedy or beam decoding with a `CaptionDecoder`, in one fixed-length loop.

    Every step re-runs the decoder on the whole `(batch, P + max_length)` token
    buffer (the causal mask makes later, still empty positions irrelevant) and
    writes the next token at the current position, so every tensor keeps one
    shape and the loop is a single `ops.fori_loop`. After `end_token_id` a
    sequence continues with `pad_token_id` at no cost.

    With `num_beams=1` this is greedy decoding (the arg-max token at each
    step); with more, beam search keeps `num_beams` hypotheses per example
    ranked by their summed log-probabilities (no length penalty) and returns
    the best one. The end token is an input, so changing it does not retrace.

    Call arguments:
        prompt: `(batch, P)` int32 token ids to continue (e.g. `[START]`).
        end_token_id: `(batch,)` int32, the end token of each example.
        context: `(batch, T_c, d)` context tokens for the cross-attention.
        context_mask: optional `(batch, T_c)` bool.

    Returns:
        A dict: `"token_ids"` `(batch, P + max_length)` int32 (prompt
        included) and `"scores"` `(batch,)` float32, the summed
        log-probabilities of the generated tokens.
    """

    def __init__(
        self,
        decoder,
        max_length,
        num_beams=1,
        pad_token_id=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.decoder = decoder
        self.max_length = max_length
        self.num_beams = num_beams
        self.pad_token_id = pad_token_id

    def _step_log_probs(self, tokens, context, context_mask, index):
        logits = self.decoder(tokens, context, context_mask=context_mask)
        logits = ops.take(logits, index - 1, axis=1)
        return ops.log_softmax(ops.cast(logits, "float32"), axis=-1)

    def _finished_log_probs(self, log_probs, finished):
        """Rows already past their end token continue with padding at cost 0."""
        vocab = ops.shape(log_probs)[-1]
        pad_only = ops.where(ops.equal(ops.arange(vocab), self.pad_token_id), 0.0, _NEG)
        return ops.where(ops.expand_dims(finished, -1), pad_only[None, :], log_probs)

    def call(self, prompt, end_token_id, context, context_mask=None):
        prompt = ops.cast(prompt, "int32")
        end_ids = ops.cast(end_token_id, "int32")
        batch = ops.shape(prompt)[0]
        start = prompt.shape[1]
        total = start + self.max_length
        tokens = ops.pad(prompt, [[0, 0], [0, self.max_length]])
        positions = ops.arange(total, dtype="int32")[None, :]
        beams = self.num_beams
        if beams > 1:
            tokens = ops.repeat(tokens, beams, axis=0)
            end_ids = ops.repeat(end_ids, beams, axis=0)
            context = ops.repeat(context, beams, axis=0)
            if context_mask is not None:
                context_mask = ops.repeat(context_mask, beams, axis=0)
        # Only beam 0 is live at first, so the first step picks distinct tokens.
        scores = ops.where(ops.arange(beams) == 0, 0.0, _NEG)
        scores = ops.broadcast_to(ops.cast(scores, "float32")[None], (batch, beams))
        finished = ops.zeros((batch * beams,), dtype="bool")

        def body(i, state):
            tokens, scores, finished = state
            index = i + start
            log_probs = self._step_log_probs(tokens, context, context_mask, index)
            log_probs = self._finished_log_probs(log_probs, finished)
            vocab = ops.shape(log_probs)[-1]
            candidates = ops.reshape(
                scores[:, :, None] + ops.reshape(log_probs, (batch, beams, vocab)),
                (batch, beams * vocab),
            )
            if beams == 1:
                best = ops.cast(ops.argmax(candidates, axis=-1), "int32")[:, None]
                values = ops.take_along_axis(candidates, best, axis=-1)
            else:
                values, best = ops.top_k(candidates, k=beams)
                best = ops.cast(best, "int32")
            parent = best // vocab
            token = ops.reshape(best % vocab, (-1, 1))
            rows = ops.reshape(
                ops.arange(batch, dtype="int32")[:, None] * beams + parent, (-1,)
            )
            tokens = ops.take(tokens, rows, axis=0)
            finished = ops.take(finished, rows, axis=0)
            tokens = ops.where(ops.equal(positions, index), token, tokens)
            finished = ops.logical_or(finished, ops.equal(token[:, 0], end_ids))
            return tokens, values, finished

        tokens, scores, _ = ops.fori_loop(
            0, self.max_length, body, (tokens, scores, finished)
        )
        if beams > 1:
            tokens = tokens[::beams]
        return {"token_ids": tokens, "scores": scores[:, 0]}

    def compute_output_spec(self, prompt, end_token_id, context, context_mask=None):
        batch, start = prompt.shape[0], prompt.shape[1]
        return {
            "token_ids": keras.KerasTensor(
                (batch, start + self.max_length), dtype="int32"
            ),
            "scores": keras.KerasTensor((batch,), dtype="float32"),
        }


class _GeneratorCache:
    """A plain holder, so that Keras does not track the cached models as layers."""

    def __init__(self):
        self.models = {}


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


class GenerationMixin:
    """`generate()` for a model with a `CaptionDecoder` in `self.decoder`.

    The host model sets `sequence_length`, `vocabulary_size`, `start_token_id`,
    `end_token_id` and `padding_token_id`, and implements:

    - `_generation_inputs()`: a dict of fresh `keras.Input`s for the
      conditioning inputs (e.g. `{"images": ...}`);
    - `_generation_context(inputs)`: `(context, context_mask)` from them;
    - `_check_generation_inputs(inputs)`: the NumPy conditioning inputs as a
      dict, checked (raise `ValueError` on a bad shape).
    """

    def _generator(self, prompt_length, max_length, num_beams):
        if not hasattr(self, "_generator_cache"):
            object.__setattr__(self, "_generator_cache", _GeneratorCache())
        key = (prompt_length, max_length, num_beams)
        cache = self._generator_cache.models
        if key not in cache:
            inputs = self._generation_inputs()
            prompt = keras.Input((prompt_length,), dtype="int32", name="prompt_ids")
            end_id = keras.Input((), dtype="int32", name="end_token_id")
            context, context_mask = self._generation_context(inputs)
            loop = TokenGenerator(
                self.decoder,
                max_length=max_length,
                num_beams=num_beams,
                pad_token_id=self.padding_token_id,
                name="token_generator",
            )
            outputs = loop(prompt, end_id, context, context_mask=context_mask)
            cache[key] = keras.Model(
                {**inputs, "prompt_ids": prompt, "end_token_id": end_id},
                outputs,
                name="generator",
            )
        return cache[key]

    def _check_token_id(self, arg, value):
        if not _is_int(value) or not 0 <= value < self.vocabulary_size:
            raise ValueError(
                f"{self.__class__.__name__}.generate: `{arg}` must be an integer "
                f"in [0, {self.vocabulary_size}). Received: {arg}={value!r}"
            )
        return value

    def _check_prompt(self, prompt, batch, start_id):
        name = f"{self.__class__.__name__}.generate"
        if prompt is None:
            return np.full((batch, 1), start_id, dtype="int32")
        prompt = np.asarray(prompt)
        if prompt.ndim == 1:
            prompt = np.broadcast_to(prompt[None], (batch, prompt.shape[0]))
        if prompt.ndim != 2 or prompt.shape[0] != batch:
            raise ValueError(
                f"{name}: `prompt` must be token ids of shape (P,) or (batch, P) "
                f"with batch={batch}. Received: prompt shape={prompt.shape}"
            )
        if prompt.shape[1] == 0:
            raise ValueError(
                f"{name}: `prompt` is empty; it needs at least one token (e.g. "
                f"the start token). Received: prompt shape={prompt.shape}"
            )
        if not np.issubdtype(prompt.dtype, np.integer) or (
            prompt.min() < 0 or prompt.max() >= self.vocabulary_size
        ):
            raise ValueError(
                f"{name}: `prompt` must hold integer token ids in [0, "
                f"{self.vocabulary_size}). Received: dtype={prompt.dtype}, "
                f"range=[{prompt.min()}, {prompt.max()}]"
            )
        return prompt.astype("int32")

    def generate(
        self,
        inputs,
        max_length=None,
        strategy="greedy",
        num_beams=4,
        prompt=None,
        start_token_id=None,
        end_token_id=None,
        batch_size=64,
        return_scores=False,
    ):
        """Decode token ids conditioned on `inputs`, greedily or by beam search.

        The decoding loop is one `ops.fori_loop` over `max_length` steps inside
        a cached functional model whose `predict_on_batch` is compiled by the
        backend (`tf.function`, `jax.jit`; eager on torch). Greedy decoding
        takes the arg-max token at each step; beam search keeps `num_beams`
        hypotheses ranked by summed log-probability (no length penalty).
        After `end_token_id` a sequence is padded with `padding_token_id`.

        Args:
            inputs: the conditioning inputs: images `(batch, H, W, C)` (or
                `{"images": ...}`) for the `Captioner`; a dict with
                `"images"`, `"history_ids"` and `"question_ids"` for the
                `DialogueModel`. NumPy arrays or tensors.
            max_length: int >= 1. Tokens to generate after the prompt; the
                prompt plus `max_length` must fit `sequence_length`. None =
                fill up to `sequence_length`.
            strategy: `"greedy"` or `"beam"`.
            num_beams: int >= 1 (beam search only; at most the vocabulary
                size). `num_beams=1` equals greedy decoding.
            prompt: None (start from `start_token_id`), or token ids `(P,)`
                (shared) or `(batch, P)` to continue; must not be empty.
            start_token_id: int or None (the model's). Used without `prompt`.
            end_token_id: int or None (the model's).
            batch_size: int. Examples decoded per compiled call.
            return_scores: bool. Also return the summed log-probabilities.

        Returns:
            `(batch, P + max_length)` int32 NumPy token ids, prompt included
            (and `(batch,)` float32 scores if `return_scores`).
        """
        name = f"{self.__class__.__name__}.generate"
        if strategy not in STRATEGIES:
            raise ValueError(
                f"{name}: `strategy` must be one of {list(STRATEGIES)}. Received: "
                f"strategy={strategy!r}"
            )
        if not _is_int(num_beams) or num_beams < 1:
            raise ValueError(
                f"{name}: `num_beams` must be an integer >= 1. Received: "
                f"num_beams={num_beams!r}"
            )
        if num_beams > self.vocabulary_size:
            raise ValueError(
                f"{name}: `num_beams` must be at most the vocabulary size "
                f"({self.vocabulary_size}). Received: num_beams={num_beams}"
            )
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(
                f"{name}: `batch_size` must be an integer >= 1. Received: "
                f"batch_size={batch_size!r}"
            )
        start_id = self._check_token_id(
            "start_token_id",
            self.start_token_id if start_token_id is None else start_token_id,
        )
        end_id = self._check_token_id(
            "end_token_id", self.end_token_id if end_token_id is None else end_token_id
        )
        inputs = self._check_generation_inputs(inputs)
        batch = len(next(iter(inputs.values())))
        prompt = self._check_prompt(prompt, batch, start_id)
        room = self.sequence_length - prompt.shape[1]
        if max_length is None:
            max_length = room
        if not _is_int(max_length) or max_length < 1:
            raise ValueError(
                f"{name}: `max_length` (the number of tokens to generate) must be "
                f"an integer >= 1. Received: max_length={max_length!r}"
            )
        if max_length > room:
            raise ValueError(
                f"{name}: the prompt ({prompt.shape[1]} tokens) plus `max_length` "
                f"must fit `sequence_length`={self.sequence_length}. Received: "
                f"max_length={max_length}"
            )
        beams = num_beams if strategy == "beam" else 1
        generator = self._generator(prompt.shape[1], max_length, beams)
        tokens, scores = [], []
        for lo in range(0, batch, batch_size):
            feed = {k: v[lo : lo + batch_size] for k, v in inputs.items()}
            feed["prompt_ids"] = prompt[lo : lo + batch_size]
            feed["end_token_id"] = np.full(len(feed["prompt_ids"]), end_id, "int32")
            out = generator.predict_on_batch(feed)
            tokens.append(np.asarray(out["token_ids"], dtype="int32"))
            scores.append(np.asarray(out["scores"], dtype="float32"))
        tokens = np.concatenate(tokens, axis=0)
        if return_scores:
            return tokens, np.concatenate(scores, axis=0)
        return tokens
