import keras
import numpy as np

from keras_mm.layers import CrossModalAttention
from keras_mm.models import VLP
from keras_mm.testing.test_case import TestCase
from tests.models.model_test_utils import (
    image_encoder,
    subset,
    synthetic_task,
    text_encoder,
)

KEYS = ("images", "token_ids", "padding_mask")


def _vlp(**kwargs):
    kwargs.setdefault("seed", 1)
    return VLP(
        image_encoder(output_mode="sequence"),
        text_encoder(output_mode="sequence"),
        embed_dim=16,
        num_fusion_layers=1,
        num_heads=2,
        **kwargs,
    )


class VLPTest(TestCase):
    def test_fit_without_labels_halves_loss_evaluate_predict_save(self):
        x, _ = synthetic_task(128)
        x = subset(x, KEYS)
        model = VLP(
            image_encoder(output_mode="sequence"),
            text_encoder(output_mode="sequence"),
            embed_dim=16,
            num_fusion_layers=1,
            num_heads=2,
            seed=1,
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        history = model.fit(x, batch_size=16, epochs=10, verbose=0)
        losses = history.history["loss"]
        self.assertLess(losses[-1], 0.5 * losses[0], history.history)
        self.assertLess(history.history["itm_loss"][-1], history.history["itm_loss"][0])
        logs = model.evaluate(x, batch_size=16, verbose=0, return_dict=True)
        self.assertEqual(sorted(logs), ["itc_loss", "itm_loss", "loss"])
        out = model.predict(x, batch_size=32, verbose=0)
        self.assertEqual(out["fused_features"].shape, (128, 6, 16))
        self.assertEqual(out["itm_logits"].shape, (128, 2))
        # Matched pairs score higher than mismatched ones after training.
        shuffled = dict(x, images=x["images"][::-1])
        matched = np.mean(keras.ops.convert_to_numpy(model.match_probability(x)))
        mismatched = np.mean(
            keras.ops.convert_to_numpy(model.match_probability(shuffled))
        )
        self.assertGreater(matched, mismatched)
        # Config and `.keras` round trips.
        config = model.get_config()
        self.assertEqual(VLP.from_config(config).get_config(), config)
        self.run_model_saving_test(model, subset(x, KEYS))

    def test_hard_negatives_exclude_positive_and_follow_similarity(self):
        model = _vlp(seed=3)
        # Image i is most similar to text (i + 1) % 4, never to itself.
        logits = np.full((4, 4), -5.0, "float32")
        for i in range(4):
            logits[i, (i + 1) % 4] = 5.0
            logits[i, i] = 50.0  # the positive: must never be sampled
        counts_t = np.zeros((4, 4))
        for _ in range(20):
            image_for_text, text_for_image = model.sample_hard_negatives(logits)
            image_for_text = keras.ops.convert_to_numpy(image_for_text)
            text_for_image = keras.ops.convert_to_numpy(text_for_image)
            self.assertFalse(np.any(image_for_text == np.arange(4)))
            self.assertFalse(np.any(text_for_image == np.arange(4)))
            counts_t[np.arange(4), text_for_image] += 1
        # exp(10) odds: the hardest negative is sampled almost always.
        self.assertGreaterEqual(
            counts_t[np.arange(4), (np.arange(4) + 1) % 4].min(), 18
        )
        # Group ids: pairs of one group (e.g. captions of one image) are never
        # negatives, even when they are the most similar.
        groups = np.array([0, 0, 1, 1])
        for _ in range(10):
            for idx in model.sample_hard_negatives(logits, groups):
                idx = keras.ops.convert_to_numpy(idx)
                self.assertFalse(np.any(groups[idx] == groups))
        # Seeded: a fresh model with the same seed draws the same negatives.
        a = keras.ops.convert_to_numpy(_vlp(seed=5).sample_hard_negatives(logits)[0])
        b = keras.ops.convert_to_numpy(_vlp(seed=5).sample_hard_negatives(logits)[0])
        np.testing.assert_array_equal(a, b)

    def test_evaluation_takes_the_hardest_negative_deterministically(self):
        # Issue 21 item 8: `evaluate` sampled its ITM negatives, so the same
        # weights gave another itm_loss per run and per backend.
        model = _vlp(seed=3)
        rng = np.random.default_rng(0)
        logits = rng.normal(size=(5, 5)).astype("float32")
        logits[2, 2] = 9.0  # the positive is never taken, however similar
        groups = np.array([0, 0, 1, 2, 3])
        masked = np.where(groups[:, None] == groups[None, :], -np.inf, logits)
        image_for_text, text_for_image = model.sample_hard_negatives(
            logits, groups, training=False
        )
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(image_for_text), masked.argmax(axis=0)
        )
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(text_for_image), masked.argmax(axis=1)
        )
        x, _ = synthetic_task(8)
        x = subset(x, KEYS)
        model.compile(optimizer="sgd")
        first = model.evaluate(x, batch_size=8, verbose=0, return_dict=True)
        second = model.evaluate(x, batch_size=8, verbose=0, return_dict=True)
        self.assertEqual(first["itm_loss"], second["itm_loss"])

    def test_custom_fusion_layer_and_input_errors(self):
        model = VLP(
            image_encoder(output_mode="sequence"),
            text_encoder(output_mode="sequence"),
            embed_dim=16,
            fusion_encoder=CrossModalAttention(
                num_heads=2, key_dim=8, intermediate_dim=32, name="fusion"
            ),
        )
        x, _ = synthetic_task(8)
        x = subset(x, KEYS)
        self.assertEqual(model(x)["fused_features"].shape, (8, 6, 16))
        revived = VLP.from_config(model.get_config())
        self.assertIsInstance(revived.fusion_encoder, CrossModalAttention)
        with self.assertRaisesRegex(ValueError, r"padding_mask shape=\(3, 6\)"):
            model(dict(x, padding_mask=x["padding_mask"][:3]))
        with self.assertRaisesRegex(ValueError, "missing the key"):
            model.predict(subset(x, ("images", "padding_mask")), verbose=0)
        with self.assertRaisesRegex(ValueError, r"images shape=\(8, 16, 16\)"):
            model(dict(x, images=x["images"][..., 0]))
