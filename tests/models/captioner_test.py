"""Captioner: loss, padding, greedy/beam decoding against NumPy oracles, saving.

The learning claim (on `load_shape_captions`, the next-token loss halves and greedy
and beam captions beat the majority and best constant captions by 0.2 BLEU-4 and
the majority by 1.0 CIDEr-D) is asserted by notebooks/09_captioning.ipynb, which CI
executes under every backend (tests/notebooks_test.py).
"""

import os

import keras
import numpy as np
import pytest

from keras_mm.encoders import ImageEncoder
from keras_mm.models.captioner import Captioner
from keras_mm.testing.test_case import TestCase
from tests.models.generation_worker import generate_in_backends

BACKENDS = ("jax", "tensorflow", "torch")
VOCAB = 20
LENGTH = 8


def image_encoder(size=16, patch=8):
    return ImageEncoder(
        image_shape=(size, size, 3),
        patch_size=patch,
        hidden_dim=32,
        num_layers=1,
        num_heads=2,
        intermediate_dim=64,
        use_class_token=False,
        pooling="mean",
        output_mode="sequence",
    )


def small_captioner(**kwargs):
    config = dict(vocabulary_size=VOCAB, sequence_length=LENGTH, hidden_dim=32)
    config.update(num_layers=1, num_heads=2)
    config.update(kwargs)
    return Captioner(image_encoder(), **config)


def randomize(model, seed=0):
    """Set every weight from NumPy (unit-scale embeddings: separated logits)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if "embeddings" in variable.path:
            value = rng.normal(size=shape)
        elif len(shape) >= 2:
            value = rng.normal(size=shape) / np.sqrt(np.prod(shape[:-1]))
        elif "gamma" in variable.path:
            value = 1.0 + 0.1 * rng.normal(size=shape)
        else:
            value = 0.1 * rng.normal(size=shape)
        variable.assign(value.astype("float32"))


def batch(n=4, seed=0, length=LENGTH, size=16):
    rng = np.random.default_rng(seed)
    images = rng.uniform(size=(n, size, size, 3)).astype("float32")
    token_ids = rng.integers(4, VOCAB, size=(n, length)).astype("int32")
    token_ids[:, 0] = 2
    for i, k in enumerate(rng.integers(3, length + 1, size=n)):
        token_ids[i, k - 1] = 3
        token_ids[i, k:] = 0
    return {"images": images, "token_ids": token_ids}


def decode(ids, vocabulary, end_id=3):
    words = []
    for i in ids[1:]:
        if i == end_id:
            break
        words.append(vocabulary[i])
    return " ".join(words)


def log_softmax(x):
    x = x.astype("float64")
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def numpy_beam_search(next_log_probs, prompt, max_length, beams, end_id, pad_id=0):
    """Beam search with NumPy over `next_log_probs(rows, tokens) -> (n, V)`.

    `rows[k]` is the example of hypothesis `tokens[k]`; the function returns the
    log-probabilities of its next token. Finished hypotheses extend with
    padding at no cost; no length penalty; ties go to the lower flat index
    (beam-major), as `top_k` breaks them. `beams=1` is greedy decoding.
    Returns a list of (tokens, summed log-probability), one per example.
    """
    hyps = [[(list(p), 0.0, False)] for p in prompt]
    for _ in range(max_length):
        flat = [(i, h) for i, hs in enumerate(hyps) for h in hs]
        logp = next_log_probs(
            np.array([i for i, _ in flat]), np.array([h[0] for _, h in flat])
        )
        vocab = logp.shape[1]
        k, new = 0, []
        for hs in hyps:
            candidates = []
            for b, (_, score, done) in enumerate(hs):
                for v in range(vocab):
                    if not done:
                        candidates.append((score + logp[k, v], b, v))
                    elif v == pad_id:
                        candidates.append((score, b, v))
                k += 1
            candidates.sort(key=lambda c: (-c[0], c[1] * vocab + c[2]))
            new.append(
                [
                    (hs[b][0] + [v], score, hs[b][2] or v == end_id)
                    for score, b, v in candidates[:beams]
                ]
            )
        hyps = new
    return [hs[0][:2] for hs in hyps]


_SHARED = {}


def shared_model():
    """One small captioner with NumPy-set weights, for the tests that only read it."""
    if "model" not in _SHARED:
        keras.utils.set_random_seed(7)
        model = small_captioner()
        randomize(model)
        _SHARED["model"] = model
    return _SHARED["model"]


class CaptionerTest(TestCase):
    @pytest.mark.every_backend
    def test_saved_model_generates_the_same_tokens_under_every_backend(self):
        # NumPy-set weights, saved here and decoded greedily in one fresh
        # process per other backend: every token id is equal. Each row starts
        # from its own prompt word, so the rows take different decoding paths.
        model = shared_model()
        images = batch(n=32, seed=4)["images"]
        prompt = [[2, 4 + i % (VOCAB - 4)] for i in range(32)]
        tokens = model.generate(images, prompt=prompt)
        self.assertEqual(tokens.shape, (32, LENGTH))
        self.assertGreater(len({tuple(t) for t in tokens[:, 2:]}), 8)
        path = os.path.join(self.get_temp_dir(), "captioner.keras")
        model.save(path)
        others = [b for b in BACKENDS if b != keras.backend.backend()]
        results = generate_in_backends(
            others, path, {"images": images}, [{"prompt": prompt}], self.get_temp_dir()
        )
        for backend, outputs in results.items():
            np.testing.assert_array_equal(outputs[0], tokens, err_msg=backend)

    def test_loss_is_masked_next_token_cross_entropy(self):
        model = shared_model()
        x = batch(seed=1)
        logits = keras.ops.convert_to_numpy(model(x)["logits"])
        self.assertEqual(logits.shape, (4, LENGTH, VOCAB))

        def oracle(mask):
            logp = log_softmax(logits[:, :-1])
            targets = x["token_ids"][:, 1:]
            nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
            weights = mask[:, 1:].astype("float64")
            return (nll * weights).sum() / weights.sum()

        loss = model.compute_loss(x, y_pred=model(x))
        self.assertAllClose(loss, oracle(x["token_ids"] != 0), atol=1e-5)
        # An explicit padding_mask is the one used (here: ignore token 2).
        mask = x["token_ids"] != 0
        mask[:, 2] = False
        x_masked = {**x, "padding_mask": mask}
        loss = model.compute_loss(x_masked, y_pred=model(x_masked))
        self.assertAllClose(loss, oracle(mask), atol=1e-5)
        self.assertEqual(keras.backend.standardize_dtype(loss.dtype), "float32")

    def test_padding_never_changes_the_logits_of_real_tokens(self):
        model = shared_model()
        x = batch(seed=2)
        junk = dict(x)
        junk["token_ids"] = np.where(
            x["token_ids"] == 0, np.int32(7), x["token_ids"]
        ).astype("int32")
        a = keras.ops.convert_to_numpy(model(x)["logits"])
        b = keras.ops.convert_to_numpy(model(junk)["logits"])
        real = x["token_ids"] != 0
        self.assertAllClose(a[real], b[real], atol=1e-5)

    def test_greedy_and_beam_match_numpy_oracles(self):
        model = shared_model()
        images = batch(n=3, seed=3)["images"]

        def next_log_probs(rows, tokens):
            # Padded to one shape (9 hypotheses x 6 positions) for every call, so
            # JAX compiles its eager ops once, not once per beam step: the causal
            # decoder's logits at the last real position ignore what follows.
            n, t = tokens.shape
            padded = np.zeros((9, 6), "int32")
            padded[:n, :t] = tokens
            x = {"images": images[np.pad(rows, (0, 9 - n))], "token_ids": padded}
            logits = keras.ops.convert_to_numpy(model(x)["logits"])
            return log_softmax(logits[:n, t - 1])

        # End token: one that greedy decoding emits mid-sequence, so the
        # "pad after the end" branch is exercised (same compiled loop: the end
        # token is an input).
        free = model.generate(images, max_length=5, end_token_id=1)
        pos = next(k for k in (3, 4, 2, 5) if free[0, k] not in free[0, 1:k])
        end_id = int(free[0, pos])
        prompt = np.full((3, 1), 2)
        for strategy, beams in (("greedy", 1), ("beam", 3)):
            tokens, scores = model.generate(
                images,
                max_length=5,
                strategy=strategy,
                num_beams=beams,
                end_token_id=end_id,
                return_scores=True,
            )
            want = numpy_beam_search(next_log_probs, prompt, 5, beams, end_id)
            self.assertEqual(tokens.tolist(), [w[0] for w in want], strategy)
            self.assertAllClose(scores, np.array([w[1] for w in want]), atol=1e-4)
            if strategy == "greedy":
                self.assertEqual(tokens[0, pos], end_id)
                self.assertEqual(tokens[0, pos + 1 :].tolist(), [0] * (5 - pos))

    def test_prompt_is_continued(self):
        model = shared_model()
        images = batch(n=3, seed=3)["images"]
        full = model.generate(images, max_length=5, end_token_id=1)
        cont = model.generate(images, max_length=3, prompt=full[:, :3], end_token_id=1)
        np.testing.assert_array_equal(cont, full)
        # A shared (P,) prompt is broadcast to the batch.
        prompt = model._check_prompt([2, 5], batch=3, start_id=2)
        self.assertEqual(prompt.tolist(), [[2, 5]] * 3)

    def test_saving_round_trip_keeps_outputs_and_generation(self):
        model = shared_model()
        x = batch(n=3, seed=3)
        revived = Captioner.from_config(model.get_config())
        self.assertEqual(revived.get_config(), model.get_config())
        restored = self.run_model_saving_test(model, x)
        self.assertIsInstance(restored, Captioner)
        np.testing.assert_array_equal(
            restored.generate(x["images"], max_length=5, end_token_id=1),
            model.generate(x["images"], max_length=5, end_token_id=1),
        )

    def test_bad_inputs_raise_clear_errors(self):
        model = shared_model()
        images = batch(n=2)["images"]
        cases = [
            (dict(prompt=np.zeros((2, 0), "int32")), "prompt` is empty"),
            (dict(prompt=[]), "prompt` is empty"),
            (dict(prompt=[2, 99]), "prompt"),
            (dict(prompt=np.zeros((3, 1), "int32")), "prompt"),
            (dict(max_length=0), "max_length"),
            (dict(max_length=-2), "max_length"),
            (dict(max_length=LENGTH), "sequence_length"),
            (dict(num_beams=0, strategy="beam"), "num_beams"),
            (dict(num_beams=VOCAB + 1, strategy="beam"), "num_beams"),
            (dict(strategy="sample"), "strategy"),
            (dict(end_token_id=VOCAB), "end_token_id"),
            (dict(batch_size=0), "batch_size"),
        ]
        for kwargs, match in cases:
            with self.assertRaisesRegex(ValueError, match, msg=str(kwargs)):
                model.generate(images, **kwargs)
        for bad in (
            np.zeros((2, 8, 8, 3)),
            np.zeros((16, 16, 3)),
            np.zeros((0, 16, 16, 3)),
        ):
            with self.assertRaisesRegex(ValueError, "images"):
                model.generate(bad)
        with self.assertRaisesRegex(ValueError, "images"):
            model.generate({"pixels": images})
        x = batch()
        with self.assertRaisesRegex(ValueError, "token_ids"):
            model({**x, "token_ids": np.zeros((4, LENGTH + 1), "int32")})
        with self.assertRaisesRegex(ValueError, "missing"):
            model({"images": x["images"]})
        with self.assertRaisesRegex(ValueError, "padding_mask"):
            bad = {**x, "padding_mask": np.ones((4, 3), bool)}
            model.compute_loss(bad, y_pred=model(x))

    def test_bad_constructor_arguments_raise(self):
        cases = [
            (dict(vocabulary_size=0), "vocabulary_size"),
            (dict(sequence_length=1), "sequence_length"),
            (dict(hidden_dim=30, num_heads=4), "divisible"),
            (dict(end_token_id=VOCAB), "end_token_id"),
            (dict(num_layers=0), "num_layers"),
        ]
        encoder = shared_model().image_encoder
        for kwargs, match in cases:
            config = dict(vocabulary_size=VOCAB, sequence_length=LENGTH, hidden_dim=32)
            config.update(num_layers=1, num_heads=2)
            config.update(kwargs)
            with self.assertRaisesRegex(ValueError, match, msg=str(kwargs)):
                Captioner(encoder, **config)
        with self.assertRaisesRegex(ValueError, "image_encoder"):
            Captioner("vit", vocabulary_size=VOCAB, sequence_length=LENGTH)
