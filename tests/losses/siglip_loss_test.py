import keras
import numpy as np
import pytest
from keras import ops

from keras_mm.losses import SigLIPLoss, siglip_loss
from keras_mm.testing import TestCase
from tests.losses.backend_utils import value_and_grad


def oracle(z, pos=None):
    """big_vision's sigmoid loss -sum_ij log sigmoid(y_ij z_ij) / B_i; value, grad."""
    z = np.asarray(z, "float64")
    pos = np.eye(*z.shape) if pos is None else np.asarray(pos, "float64")
    y = 2.0 * pos - 1.0
    log_sig = -np.logaddexp(0.0, -y * z)  # log sigmoid(y z), exact in float64
    n = z.shape[0]
    sig_neg = np.exp(-np.logaddexp(0.0, y * z))  # sigmoid(-y z)
    return -log_sig.sum() / n, -y * sig_neg / n, -log_sig.sum(1)


def same_group(a, b=None):
    b = a if b is None else b
    return (np.asarray(a)[:, None] == np.asarray(b)[None, :]).astype("float64")


def logits(seed, shape=(5, 5), scale=3.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype("float32")


class SigLIPLossTest(TestCase):
    def test_matches_oracle(self):
        z = logits(0) - 5.0
        self.assertAllClose(siglip_loss(z), oracle(z)[0], atol=1e-5, rtol=1e-5)
        # Normalised by B (number of images), not by B^2: B_i = 3 vs B_t = 8.
        z = logits(1, shape=(3, 8))
        self.assertAllClose(siglip_loss(z), oracle(z)[0], atol=1e-5, rtol=1e-5)

    def test_multi_positive_labels(self):
        z = logits(2)
        labels = np.array([4, 4, 1, 2, 1])
        expected = oracle(z, same_group(labels))[0]
        self.assertAllClose(siglip_loss(z, labels), expected, atol=1e-5, rtol=1e-5)
        ids = (np.array([0, 1, 2]), np.array([2, 2, 0, 5]))
        z = logits(3, shape=(3, 4))
        expected = oracle(z, same_group(*ids))[0]
        self.assertAllClose(siglip_loss(z, ids), expected, atol=1e-5, rtol=1e-5)

    def test_positives_matrix(self):
        z = logits(5, shape=(3, 4))
        pos = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], "float32")
        self.assertAllClose(siglip_loss(z, pos), oracle(z, pos)[0], atol=1e-5)

    def test_half_precision_inputs_compute_in_float32(self):
        z = logits(4)
        for dtype in ("float16", "bfloat16"):
            zh = ops.cast(z, dtype)
            seen = ops.convert_to_numpy(ops.cast(zh, "float32"))
            loss = siglip_loss(zh)
            self.assertEqual(keras.backend.standardize_dtype(loss.dtype), "float32")
            self.assertAllClose(loss, oracle(seen)[0], atol=1e-5, rtol=1e-5)

    def test_logits_of_magnitude_1e4(self):
        z = logits(5, scale=1e4)
        loss = siglip_loss(z)
        self.assertTrue(np.isfinite(ops.convert_to_numpy(loss)))
        self.assertAllClose(loss, oracle(z)[0], atol=1e-5, rtol=1e-5)
        perfect = np.where(np.eye(4) > 0, 1e4, -1e4).astype("float32")
        self.assertAllClose(siglip_loss(perfect), 0.0)
        self.assertAllClose(siglip_loss(-perfect), 4 * 1e4)
        _, (grad,) = value_and_grad(siglip_loss, z)
        self.assertAllClose(grad, oracle(z)[1], atol=1e-5, rtol=1e-5)

    def test_batch_of_one(self):
        z = np.array([[-2.0]], "float32")
        self.assertAllClose(siglip_loss(z), np.log1p(np.exp(2.0)), atol=1e-6)

    def test_gradient_matches_analytic(self):
        z = logits(6)
        labels = np.array([4, 4, 1, 2, 1])
        value, (grad,) = value_and_grad(siglip_loss, z)
        self.assertAllClose(value, oracle(z)[0], atol=1e-5, rtol=1e-5)
        self.assertAllClose(grad, oracle(z)[1], atol=1e-5, rtol=1e-5)
        _, (grad,) = value_and_grad(lambda t: siglip_loss(t, labels), z)
        self.assertAllClose(grad, oracle(z, same_group(labels))[1], atol=1e-5)

    def test_loss_class(self):
        z = logits(7, shape=(3, 6))
        loss = SigLIPLoss()
        self.assertAllClose(loss(None, z), oracle(z)[0], atol=1e-5, rtol=1e-5)
        zs = logits(8)
        labels = np.array([4, 4, 1, 2, 1])
        pos = same_group(labels)
        self.assertAllClose(loss(labels, zs), oracle(zs, pos)[0], atol=1e-5)
        w = np.array([1.0, 0.0, 2.0, 1.0, 0.5], "float32")
        expected = np.sum(oracle(zs, pos)[2] * w) / 5
        self.assertAllClose(loss(labels, zs, sample_weight=w), expected, atol=1e-5)

    def test_serialization(self):
        loss = SigLIPLoss(name="sig", reduction="sum")
        config = loss.get_config()
        self.assertEqual(SigLIPLoss.from_config(config).get_config(), config)
        serialized = keras.losses.serialize(loss)
        self.assertEqual(serialized["registered_name"], "keras_mm>SigLIPLoss")
        revived = keras.losses.deserialize(serialized)
        self.assertIsInstance(revived, SigLIPLoss)
        self.assertEqual(revived.get_config(), config)

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match=r"logits.*rank 2.*Received: logits"):
            siglip_loss(np.ones((2, 2, 2)))
        with pytest.raises(ValueError, match=r"square.*Received: logits shape"):
            siglip_loss(np.ones((2, 3)), np.arange(2))
        with pytest.raises(ValueError, match=r"labels.*\(3, 3\).*Received: labels"):
            siglip_loss(np.ones((3, 3)), np.ones((3, 1)))
