import keras
import numpy as np

from keras_mm.models import CLIP
from keras_mm.pretrained import learning_rate_multipliers
from keras_mm.testing import TestCase


def tiny_clip():
    return CLIP.from_preset("clip_shapes_tiny")


def batch(seed=0):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(2, 64, (4, 16)).astype("int32")
    return {
        "images": rng.uniform(0, 1, (4, 32, 32, 3)).astype("float32"),
        "token_ids": token_ids,
        "padding_mask": np.ones((4, 16), bool),
    }


class LearningRateMultipliersTest(TestCase):
    def test_one_sgd_step_scales_each_part(self):
        # With plain SGD a step is -lr * gradient, so each part's change is its
        # multiplier times the change of an unscaled step from the same weights.
        model = tiny_clip()
        x = batch()
        start = model.get_weights()
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        model.train_on_batch(x)
        plain = [w - s for w, s in zip(model.get_weights(), start)]

        model.set_weights(start)
        model.compile(
            optimizer=learning_rate_multipliers(
                model,
                {"image_encoder": 0.25, "text_projection": 0.0},
                keras.optimizers.SGD(0.5),
            )
        )
        model.train_on_batch(x)
        scaled = [w - s for w, s in zip(model.get_weights(), start)]

        parts = {
            id(v): factor
            for name, factor in (("image_encoder", 0.25), ("text_projection", 0.0))
            for v in getattr(model, name).weights
        }
        checked = set()
        for variable, a, b in zip(model.weights, scaled, plain):
            factor = parts.get(id(variable), 1.0)
            checked.add(factor)
            self.assertAllClose(a, factor * b, atol=1e-6, rtol=1e-4, msg=variable.path)
        self.assertEqual(checked, {0.25, 0.0, 1.0})
        moved = [np.abs(b).max() for b in plain]
        self.assertGreater(max(moved), 1e-4)

    def test_serializes(self):
        model = tiny_clip()
        optimizer = learning_rate_multipliers(
            model, {"image_encoder": 0.1}, keras.optimizers.AdamW(1e-3)
        )
        restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
        self.assertIsInstance(restored, keras.optimizers.MultiOptimizer)
        rates = sorted(float(o.learning_rate.numpy()) for o in restored.optimizers)
        self.assertAllClose(rates, [1e-4, 1e-3], rtol=1e-6)

    def test_scales_a_warmup_cosine_schedule(self):
        model = tiny_clip()
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, 10, warmup_target=1e-3, warmup_steps=4
        )
        optimizer = learning_rate_multipliers(
            model, {"image_encoder": 0.1}, keras.optimizers.AdamW(schedule)
        )
        for step in (0, 2, 4, 9):
            # The part's rate is a tenth of the base schedule at every step.
            base = float(schedule(step))
            rates = sorted(float(o._learning_rate(step)) for o in optimizer.optimizers)
            self.assertAllClose(rates, sorted([base, 0.1 * base]), rtol=1e-6)

    def test_rejects_bad_arguments(self):
        model = tiny_clip()
        with self.assertRaisesRegex(ValueError, "neither a layer attribute"):
            learning_rate_multipliers(model, {"vision_tower": 0.1})
        with self.assertRaisesRegex(ValueError, ">= 0"):
            learning_rate_multipliers(model, {"image_encoder": -1})
        with self.assertRaisesRegex(ValueError, "non-empty dict"):
            learning_rate_multipliers(model, {})
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay([10], [1.0, 0.5])
        with self.assertRaisesRegex(ValueError, "schedule"):
            learning_rate_multipliers(
                model, {"image_encoder": 0.1}, keras.optimizers.Adam(schedule)
            )
        model.image_encoder.trainable = False
        with self.assertRaisesRegex(ValueError, "no trainable variables"):
            learning_rate_multipliers(model, {"image_encoder": 0.1})
