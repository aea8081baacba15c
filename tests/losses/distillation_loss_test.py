import keras
import numpy as np
import pytest
from keras import ops

from keras_mm.losses import DistillationLoss, distillation_loss
from keras_mm.testing import TestCase
from tests.losses.backend_utils import value_and_grad


def log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def oracle(student, teacher, temperature=1.0):
    """T^2 mean_i KL(softmax(t_i/T) || softmax(s_i/T)); value, d/d student, rows."""
    s = np.asarray(student, "float64") / temperature
    t = np.asarray(teacher, "float64") / temperature
    log_p, log_q = log_softmax(t), log_softmax(s)
    rows = temperature**2 * (np.exp(log_p) * (log_p - log_q)).sum(-1)
    grad = temperature * (np.exp(log_q) - np.exp(log_p)) / s.shape[0]
    return rows.mean(), grad, rows


def logits(seed, shape=(4, 7), scale=2.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype("float32")


class DistillationLossTest(TestCase):
    def test_matches_oracle(self):
        s, t = logits(0), logits(1)
        for temperature in (1.0, 0.5, 4.0):
            self.assertAllClose(
                distillation_loss(s, t, temperature),
                oracle(s, t, temperature)[0],
                atol=1e-5,
                rtol=1e-5,
            )
        # (B, B) similarity logits, e.g. image-to-text rows of a CLIP teacher.
        s, t = logits(2, (5, 5)), logits(3, (5, 5))
        self.assertAllClose(
            distillation_loss(s, t, 2.0), oracle(s, t, 2.0)[0], atol=1e-5, rtol=1e-5
        )
        self.assertAllClose(distillation_loss(t, t, 3.0), 0.0, atol=1e-6)

    def test_half_precision_inputs_compute_in_float32(self):
        s, t = logits(4), logits(5)
        for dtype in ("float16", "bfloat16"):
            sh, th = ops.cast(s, dtype), ops.cast(t, dtype)
            loss = distillation_loss(sh, th, 2.0)
            self.assertEqual(keras.backend.standardize_dtype(loss.dtype), "float32")
            seen = [ops.convert_to_numpy(ops.cast(v, "float32")) for v in (sh, th)]
            self.assertAllClose(loss, oracle(*seen, 2.0)[0], atol=1e-5, rtol=1e-5)

    def test_logits_of_magnitude_1e4(self):
        s, t = logits(6, scale=1e4), logits(7, scale=1e4)
        loss = distillation_loss(s, t)
        self.assertTrue(np.isfinite(ops.convert_to_numpy(loss)))
        self.assertAllClose(loss, oracle(s, t)[0], atol=1e-5, rtol=1e-5)
        # A one-hot teacher (other probabilities underflow to 0) gives 0, not NaN.
        self.assertAllClose(distillation_loss(t, t), 0.0, atol=1e-6)

    def test_batch_of_one_and_gradient(self):
        s, t = logits(8, (1, 5)), logits(9, (1, 5))
        self.assertAllClose(distillation_loss(s, t), oracle(s, t)[0], atol=1e-5)
        s, t = logits(10), logits(11)
        _, (grad,) = value_and_grad(lambda a: distillation_loss(a, t, 2.0), s)
        self.assertAllClose(grad, oracle(s, t, 2.0)[1], atol=1e-5, rtol=1e-5)

    def test_loss_class(self):
        s, t = logits(12), logits(13)
        loss = DistillationLoss(temperature=2.0)
        self.assertAllClose(loss(t, s), oracle(s, t, 2.0)[0], atol=1e-5, rtol=1e-5)
        w = np.array([1.0, 0.0, 2.0, 0.5], "float32")
        expected = np.sum(oracle(s, t, 2.0)[2] * w) / 4
        self.assertAllClose(loss(t, s, sample_weight=w), expected, atol=1e-5)
        # A student fits precomputed teacher logits with compile(loss=...).
        rng = np.random.default_rng(14)
        x = rng.normal(size=(32, 6)).astype("float32")
        teacher = (x @ rng.normal(size=(6, 4))).astype("float32")
        student = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
        student.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
        history = student.fit(x, teacher, epochs=5, batch_size=32, verbose=0)
        self.assertLess(history.history["loss"][-1], history.history["loss"][0])

    def test_serialization(self):
        loss = DistillationLoss(temperature=3.0, name="kd")
        config = loss.get_config()
        self.assertEqual(config["temperature"], 3.0)
        self.assertEqual(DistillationLoss.from_config(config).get_config(), config)
        serialized = keras.losses.serialize(loss)
        self.assertEqual(serialized["registered_name"], "keras_mm>DistillationLoss")
        revived = keras.losses.deserialize(serialized)
        self.assertIsInstance(revived, DistillationLoss)
        self.assertEqual(revived.get_config(), config)

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match=r"same shape.*Received: student_logits"):
            distillation_loss(np.ones((2, 3)), np.ones((2, 4)))
        with pytest.raises(ValueError, match=r"teacher_logits.*rank 2.*Received"):
            distillation_loss(np.ones((2, 3)), np.ones((3,)))
        for bad in (0.0, -1.0, "warm"):
            with pytest.raises(ValueError, match="temperature.*Received: temperature"):
                distillation_loss(np.ones((2, 3)), np.ones((2, 3)), bad)
            with pytest.raises(ValueError, match="temperature"):
                DistillationLoss(temperature=bad)
