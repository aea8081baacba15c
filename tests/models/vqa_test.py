"""VQAModel: every fusion, saving, answers, padding and bad input, with tiny models.

The learning claim (trained on `load_shape_questions`, held-out VQA accuracy beats
the best question-only answer prior by 0.15, colour and shape questions above 0.5)
is asserted by notebooks/11_vqa.ipynb, which CI executes under every backend
(tests/notebooks_test.py); this file does not train the same model again.
"""

import keras
import numpy as np

from keras_mm.data.answer_scores import make_answer_scores
from keras_mm.encoders import ImageEncoder, TextEncoder
from keras_mm.layers import GatedFusion
from keras_mm.models.vqa import VQAModel
from keras_mm.testing.test_case import TestCase
from tests.models.application_test_utils import (
    eager_round_trip,
    json_config,
    tiny_image_encoder,
    tiny_text_encoder,
)

FUSIONS = ("attention", "gated", "concat", "cross_attention")


def _encoders(vocabulary_size=20, length=6, mode="both"):
    image = ImageEncoder(
        image_shape=(16, 16, 3),
        patch_size=8,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        intermediate_dim=32,
        pooling="mean",
        use_class_token=False,
        output_mode=mode,
    )
    text = TextEncoder(
        vocabulary_size=vocabulary_size,
        max_sequence_length=length,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        intermediate_dim=32,
        output_mode=mode,
    )
    return image, text


def _tiny():
    return tiny_image_encoder(), tiny_text_encoder()


def _batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, 20, size=(n, 6)).astype("int32")
    ids[:, 4:] = 0
    return {
        "images": rng.uniform(size=(n, 16, 16, 3)).astype("float32"),
        "token_ids": ids,
        "padding_mask": ids > 0,
    }


class VQAModelTest(TestCase):
    def test_every_fusion_predicts_and_round_trips(self):
        x = _batch()
        for fusion in FUSIONS + ("keras_mm encoders",):
            if fusion == "keras_mm encoders":
                image, text = _encoders()
                fusion = "cross_attention"
            else:
                image, text = _tiny()
            model = VQAModel(
                image,
                text,
                num_answers=5,
                answer_vocabulary=list("abcde"),
                fusion=fusion,
            )
            self.assertEqual(
                sorted(model.input), ["images", "padding_mask", "token_ids"]
            )
            out = model(x)
            self.assertEqual(tuple(out["logits"].shape), (4, 5))
            restored = eager_round_trip(self, model, x)
            self.assertIsInstance(restored, VQAModel)
            self.assertEqual(json_config(restored), json_config(model))
            self.assertEqual(restored.answer_vocabulary, list("abcde"))
        self.assertIsInstance(restored.image_encoder, ImageEncoder)

    def test_fusions_build_the_documented_layers(self):
        for fusion, layer in (
            ("attention", "AttentionFusion"),
            ("gated", "GatedFusion"),
            ("concat", "ConcatFusion"),
            ("cross_attention", "VLPFusionEncoder"),
        ):
            image, text = _tiny()
            model = VQAModel(image, text, num_answers=3, fusion=fusion)
            self.assertEqual(type(model.fusion).__name__, layer)
        image, text = _tiny()
        custom = GatedFusion(name="my_gate")
        model = VQAModel(image, text, num_answers=3, fusion=custom)
        self.assertIs(model.fusion, custom)
        restored = eager_round_trip(self, model, _batch())
        self.assertIsInstance(restored.fusion, GatedFusion)

    def test_soft_scores_with_binary_crossentropy(self):
        # Soft VQA targets (min(#humans / 3, 1)) with the sigmoid BCE loss.
        x = _batch(8)
        image, text = _tiny()
        model = VQAModel(image, text, num_answers=3, fusion="cross_attention")
        answers = [["a", "a", "b"], "c", "b", "a", ["c"] * 3, "a", "b", "c"]
        y = make_answer_scores(answers, ["a", "b", "c"])
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
        self.assertTrue(model.loss.from_logits)
        history = model.fit(x, y, batch_size=8, epochs=8, verbose=0)
        self.assertLess(history.history["loss"][-1], history.history["loss"][0])
        self.assertIn("accuracy", history.history)

    def test_predict_answers(self):
        x = _batch(6)
        image, text = _tiny()
        model = VQAModel(image, text, num_answers=4, answer_vocabulary=list("wxyz"))
        logits = keras.ops.convert_to_numpy(model(x)["logits"])
        words = model.predict_answers(x)
        self.assertEqual(words, ["wxyz"[i] for i in logits.argmax(-1)])
        top = model.predict_answers(x, top_k=2)
        self.assertEqual([t[0] for t in top], words)
        self.assertEqual(len(top[0]), 2)
        image, text = _tiny()
        plain = VQAModel(image, text, num_answers=4)
        ids = plain.predict_answers(x)
        self.assertEqual(ids.shape, (6,))

    def test_padding_does_not_change_answers(self):
        # Extra padding tokens at the end never change the logits.
        image, text = _encoders(length=8)
        model = VQAModel(image, text, num_answers=3, fusion="cross_attention")
        x = _batch()
        padded = dict(x)
        padded["token_ids"] = np.pad(x["token_ids"], ((0, 0), (0, 2)))
        padded["padding_mask"] = padded["token_ids"] > 0
        self.assertAllClose(model(padded)["logits"], model(x)["logits"], atol=1e-5)

    def test_mixed_precision(self):
        image, text = _tiny()
        model = VQAModel(
            image, text, num_answers=3, fusion="cross_attention", dtype="mixed_bfloat16"
        )
        logits = model(_batch())["logits"]
        self.assertEqual(keras.backend.standardize_dtype(logits.dtype), "bfloat16")
        self.assertTrue(
            np.all(
                np.isfinite(
                    keras.ops.convert_to_numpy(keras.ops.cast(logits, "float32"))
                )
            )
        )
        for weight in model.get_layer("answer_logits").weights:
            self.assertEqual(keras.backend.standardize_dtype(weight.dtype), "float32")

    def test_bad_inputs_raise_clear_errors(self):
        image, text = _tiny()
        model = VQAModel(image, text, num_answers=3)
        x = _batch()
        empty = dict(x, token_ids=np.zeros_like(x["token_ids"]))
        empty["padding_mask"] = empty["token_ids"] > 0
        with self.assertRaisesRegex(ValueError, "token_ids.*empty|empty.*token_ids"):
            model(empty)
        with self.assertRaisesRegex(ValueError, "token_ids"):
            model.predict(empty, verbose=0)
        no_tokens = dict(
            x,
            token_ids=np.zeros((4, 0), "int32"),
            padding_mask=np.zeros((4, 0), bool),
        )
        with self.assertRaisesRegex(ValueError, "question is empty"):
            model(no_tokens)
        mismatched = dict(x, images=x["images"][:3])
        with self.assertRaisesRegex(ValueError, "same batch size.*images shape=\\(3"):
            model(mismatched)
        with self.assertRaisesRegex(ValueError, "missing the key.*images"):
            model({k: v for k, v in x.items() if k != "images"})
        with self.assertRaisesRegex(ValueError, "images"):
            model(dict(x, images=x["images"][:, :8]))

    def test_bad_arguments_raise_clear_errors(self):
        image, text = _tiny()
        with self.assertRaisesRegex(ValueError, "fusion.*Received: fusion='sum'"):
            VQAModel(image, text, num_answers=3, fusion="sum")
        with self.assertRaisesRegex(ValueError, "num_answers"):
            VQAModel(image, text, num_answers=0)
        with self.assertRaisesRegex(ValueError, "answer_vocabulary"):
            VQAModel(image, text, num_answers=3, answer_vocabulary=["a", "b"])
        with self.assertRaisesRegex(ValueError, "num_heads"):
            VQAModel(image, text, num_answers=3, hidden_dim=10, num_heads=4)
        with self.assertRaisesRegex(ValueError, "dropout"):
            VQAModel(image, text, num_answers=3, dropout=1.0)
        with self.assertRaisesRegex(ValueError, "image_encoder"):
            VQAModel("vit", text, num_answers=3)
