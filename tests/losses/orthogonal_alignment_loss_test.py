import keras
import numpy as np
import pytest
from keras import ops

from keras_mm.losses import OrthogonalAlignmentLoss, orthogonal_alignment_loss
from keras_mm.testing import TestCase
from tests.losses.backend_utils import value_and_grad


def oracle(zx, zy):
    """||zx - zy||_F^2 / B, its gradient in zx, and the per-row terms."""
    d = np.asarray(zx, "float64") - np.asarray(zy, "float64")
    return (d**2).sum() / len(d), 2 * d / len(d), (d**2).sum(1)


def views(seed, shape=(6, 3), scale=1.0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=shape) * scale).astype("float32") for _ in range(2)]


class OrthogonalAlignmentLossTest(TestCase):
    def test_matches_oracle(self):
        zx, zy = views(0)
        self.assertAllClose(orthogonal_alignment_loss(zx, zy), oracle(zx, zy)[0])
        _, (grad, _) = value_and_grad(orthogonal_alignment_loss, zx, zy)
        self.assertAllClose(grad, oracle(zx, zy)[1], atol=1e-6)
        # B = 1.
        zx, zy = views(1, (1, 4))
        self.assertAllClose(orthogonal_alignment_loss(zx, zy), oracle(zx, zy)[0])

    def test_half_precision_and_large_inputs(self):
        zx, zy = views(2)
        for dtype in ("float16", "bfloat16"):
            a, b = ops.cast(zx, dtype), ops.cast(zy, dtype)
            loss = orthogonal_alignment_loss(a, b)
            self.assertEqual(keras.backend.standardize_dtype(loss.dtype), "float32")
            seen = [ops.convert_to_numpy(ops.cast(v, "float32")) for v in (a, b)]
            self.assertAllClose(loss, oracle(*seen)[0], atol=1e-5, rtol=1e-5)
        zx, zy = views(3, scale=1e4)
        loss = orthogonal_alignment_loss(zx, zy)
        self.assertAllClose(loss, oracle(zx, zy)[0], atol=1e-5, rtol=1e-5)

    def test_loss_class(self):
        zx, zy = views(4)
        loss = OrthogonalAlignmentLoss()
        self.assertAllClose(loss(zx, zy), oracle(zx, zy)[0], atol=1e-6)
        w = np.arange(6, dtype="float32")
        expected = np.sum(oracle(zx, zy)[2] * w) / 6
        self.assertAllClose(loss(zx, zy, sample_weight=w), expected, atol=1e-5)
        serialized = keras.losses.serialize(OrthogonalAlignmentLoss(name="align"))
        self.assertEqual(
            serialized["registered_name"], "keras_mm>OrthogonalAlignmentLoss"
        )
        revived = keras.losses.deserialize(serialized)
        self.assertIsInstance(revived, OrthogonalAlignmentLoss)
        self.assertEqual(
            revived.get_config(),
            loss.from_config(
                {"name": "align", "reduction": "sum_over_batch_size"}
            ).get_config(),
        )

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match=r"same shape.*Received: zx shape"):
            orthogonal_alignment_loss(np.ones((2, 3)), np.ones((2, 4)))
        with pytest.raises(ValueError, match=r"`zy`.*rank 2.*Received: zy shape"):
            orthogonal_alignment_loss(np.ones((2, 3)), np.ones((2, 3, 1)))
