"""DialogueModel: outputs and losses against a NumPy oracle, saving, bad input.

The learning claim (on `load_shape_dialogues`, both loss terms fall by 40%, R@1 beats
random by 0.3 and the question prior by 0.1, MRR beats the prior, generated answers
beat the prior's by 0.1, the history matters) is asserted by
notebooks/10_dialogue.ipynb, which CI executes under every backend
(tests/notebooks_test.py).
"""

import os

import keras
import numpy as np
import pytest

from keras_mm.encoders import ImageEncoder
from keras_mm.models.dialogue import DialogueModel
from keras_mm.testing.test_case import TestCase
from tests.models.captioner_test import log_softmax, randomize
from tests.models.generation_worker import generate_in_backends

BACKENDS = ("jax", "tensorflow", "torch")
VOCAB = 24
HISTORY, QUESTION, ANSWER = 10, 5, 4


def image_encoder(size=16):
    return ImageEncoder(
        image_shape=(size, size, 3),
        patch_size=8,
        hidden_dim=32,
        num_layers=1,
        num_heads=2,
        intermediate_dim=64,
        use_class_token=False,
        pooling="mean",
        output_mode="sequence",
    )


def config(**kwargs):
    out = dict(
        vocabulary_size=VOCAB,
        history_length=HISTORY,
        question_length=QUESTION,
        answer_length=ANSWER,
        hidden_dim=32,
        num_layers=1,
        num_heads=2,
    )
    out.update(kwargs)
    return out


_SHARED = {}


def shared_model():
    if "model" not in _SHARED:
        keras.utils.set_random_seed(11)
        model = DialogueModel(image_encoder(), **config())
        randomize(model, seed=1)
        _SHARED["model"] = model
    return _SHARED["model"]


def batch(n=4, seed=0, candidates=6):
    rng = np.random.default_rng(seed)
    history = rng.integers(4, VOCAB, size=(n, HISTORY)).astype("int32")
    history[0] = 0  # a first turn: no history
    history[1, 6:] = 0
    question = rng.integers(4, VOCAB, size=(n, QUESTION)).astype("int32")
    question[:, 4:] = 0
    answer = np.zeros((n, ANSWER), "int32")
    answer[:, 0] = 2
    answer[:, 1] = rng.integers(4, VOCAB, size=n)
    answer[:, 2] = 3
    cands = rng.integers(4, VOCAB, size=(n, candidates, 3)).astype("int32")
    cands[:, :, 1:] *= rng.integers(0, 2, size=(n, candidates, 2))
    x = {
        "images": rng.uniform(size=(n, 16, 16, 3)).astype("float32"),
        "history_ids": history,
        "question_ids": question,
        "candidate_ids": cands,
        "answer_ids": answer,
    }
    return x, rng.integers(0, candidates, size=n).astype("int32")


class DialogueModelTest(TestCase):
    @pytest.mark.every_backend
    def test_saved_model_generates_the_same_answers_under_every_backend(self):
        # NumPy-set weights, saved here and decoded greedily in one fresh
        # process per other backend: every token id is equal. Each row starts
        # from its own prompt word, so the rows take different decoding paths.
        model = shared_model()
        x, _ = batch(n=32, seed=5)
        inputs = {k: x[k] for k in ("images", "history_ids", "question_ids")}
        prompt = [[2, 4 + i % (VOCAB - 4)] for i in range(32)]
        tokens = model.generate(inputs, prompt=prompt)
        self.assertEqual(tokens.shape, (32, ANSWER))
        self.assertGreater(len({tuple(t) for t in tokens[:, 2:]}), 8)
        path = os.path.join(self.get_temp_dir(), "dialogue.keras")
        model.save(path)
        others = [b for b in BACKENDS if b != keras.backend.backend()]
        results = generate_in_backends(
            others, path, inputs, [{"prompt": prompt}], self.get_temp_dir()
        )
        for backend, outputs in results.items():
            np.testing.assert_array_equal(outputs[0], tokens, err_msg=backend)

    def test_outputs_and_loss_terms_match_numpy_oracle(self):
        model = shared_model()
        x, y = batch(seed=1)
        out = model(x)
        scores = keras.ops.convert_to_numpy(out["candidate_scores"])
        self.assertEqual(scores.shape, (4, 6))
        self.assertEqual(
            tuple(out["context_tokens"].shape), (4, 4 + HISTORY + QUESTION, 32)
        )
        mask = keras.ops.convert_to_numpy(out["context_mask"])
        expected_mask = np.concatenate(
            [np.ones((4, 4), bool), x["history_ids"] != 0, x["question_ids"] != 0], 1
        )
        np.testing.assert_array_equal(mask, expected_mask)

        logits = keras.ops.convert_to_numpy(
            model.decoder(
                x["answer_ids"], out["context_tokens"], context_mask=out["context_mask"]
            )
        )
        ranking = -np.mean(log_softmax(scores)[np.arange(4), y])
        logp = log_softmax(logits[:, :-1])
        targets = x["answer_ids"][:, 1:]
        nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
        generation = (nll * (targets != 0)).sum() / (targets != 0).sum()
        terms = model.evaluate_loss_terms(x, y)
        self.assertAllClose(terms["ranking_loss"], ranking, atol=1e-5)
        self.assertAllClose(terms["generation_loss"], generation, atol=1e-5)
        self.assertAllClose(terms["loss"], ranking + generation, atol=1e-5)

    def test_candidates_are_scored_independently_of_order_and_padding(self):
        model = shared_model()
        x, _ = batch(seed=2)
        scores = keras.ops.convert_to_numpy(model(x)["candidate_scores"])
        perm = np.array([3, 0, 5, 1, 4, 2])
        shuffled = {**x, "candidate_ids": x["candidate_ids"][:, perm]}
        self.assertAllClose(
            model(shuffled)["candidate_scores"], scores[:, perm], atol=1e-5
        )
        # A different number of candidates and extra padding change nothing.
        padded = np.pad(x["candidate_ids"][:, :4], [[0, 0], [0, 0], [0, 2]])
        fewer = {**x, "candidate_ids": padded}
        self.assertAllClose(model(fewer)["candidate_scores"], scores[:, :4], atol=1e-5)
        # The history is read: changing it changes the scores.
        other = {**x, "history_ids": x["history_ids"][::-1]}
        diff = np.abs(
            keras.ops.convert_to_numpy(model(other)["candidate_scores"]) - scores
        )
        self.assertGreater(diff.max(), 1e-4)

    def test_saving_round_trip_keeps_scores_and_generation(self):
        model = shared_model()
        x, _ = batch(seed=3)
        revived = DialogueModel.from_config(model.get_config())
        self.assertEqual(revived.get_config(), model.get_config())
        inputs = {k: v for k, v in x.items() if k != "answer_ids"}
        restored = self.run_model_saving_test(model, inputs)
        self.assertIsInstance(restored, DialogueModel)
        gen = {k: x[k] for k in ("images", "history_ids", "question_ids")}
        np.testing.assert_array_equal(
            restored.generate(gen, end_token_id=1), model.generate(gen, end_token_id=1)
        )

    def test_single_objective_losses_need_only_their_inputs(self):
        x, y = batch(seed=4)
        no_answers = {k: v for k, v in x.items() if k != "answer_ids"}
        encoder = shared_model().image_encoder
        # Ranking only: no "answer_ids" needed.
        model = DialogueModel(encoder, **config(generation_weight=0.0))
        terms = model.evaluate_loss_terms(no_answers, y)
        self.assertEqual(sorted(terms), ["loss", "ranking_loss"])
        self.assertAllClose(terms["loss"], terms["ranking_loss"])
        # Generation only: no labels needed.
        model = DialogueModel(encoder, **config(ranking_weight=0.0))
        terms = model.evaluate_loss_terms(x)
        self.assertEqual(sorted(terms), ["generation_loss", "loss"])
        self.assertAllClose(terms["loss"], terms["generation_loss"])

    def test_bad_inputs_raise_clear_errors(self):
        model = shared_model()
        x, y = batch()
        with self.assertRaisesRegex(ValueError, "index of the true candidate"):
            model.evaluate_loss_terms(x)
        with self.assertRaisesRegex(ValueError, "answer_ids"):
            model.evaluate_loss_terms(
                {k: v for k, v in x.items() if k != "answer_ids"}, y
            )
        with self.assertRaisesRegex(ValueError, "answer_ids"):
            model.evaluate_loss_terms({**x, "answer_ids": np.zeros((4, 9), "int32")}, y)
        with self.assertRaisesRegex(ValueError, "missing"):
            model({k: v for k, v in x.items() if k != "question_ids"})
        gen = {k: x[k] for k in ("images", "history_ids", "question_ids")}
        cases = [
            (dict(prompt=np.zeros((4, 0), "int32")), "prompt` is empty"),
            (dict(max_length=0), "max_length"),
            (dict(max_length=ANSWER), "sequence_length"),
            (dict(num_beams=0, strategy="beam"), "num_beams"),
        ]
        for kwargs, match in cases:
            with self.assertRaisesRegex(ValueError, match, msg=str(kwargs)):
                model.generate(gen, **kwargs)
        with self.assertRaisesRegex(ValueError, "question_ids"):
            model.generate({k: gen[k] for k in ("images", "history_ids")})
        with self.assertRaisesRegex(ValueError, "history_ids"):
            model.generate({**gen, "history_ids": gen["history_ids"][:, :3]})
        with self.assertRaisesRegex(ValueError, "images"):
            model.generate({**gen, "images": np.zeros((4, 8, 8, 3))})
        encoder = model.image_encoder
        for kwargs, match in [
            (dict(answer_length=1), "answer_length"),
            (dict(hidden_dim=30, num_heads=4), "divisible"),
            (dict(ranking_weight=-1.0), "ranking_weight"),
            (dict(start_token_id=VOCAB), "start_token_id"),
        ]:
            with self.assertRaisesRegex(ValueError, match, msg=str(kwargs)):
                DialogueModel(encoder, **config(**kwargs))
