import keras
import numpy as np
import pytest
from keras import ops

from keras_mm.losses import SoftOrthogonalAlignmentLoss, soft_orthogonal_alignment_loss
from keras_mm.testing import TestCase
from tests.losses.backend_utils import value_and_grad


def oracle(fx, gy, w=1.0):
    """||f - g||^2 / B + w (||f^T f / B - I||^2 + ||g^T g / B - I||^2), d/df."""
    f, g = np.asarray(fx, "float64"), np.asarray(gy, "float64")
    b, identity = len(f), np.eye(f.shape[1])
    cf, cg = f.T @ f / b - identity, g.T @ g / b - identity
    value = ((f - g) ** 2).sum() / b + w * ((cf**2).sum() + (cg**2).sum())
    grad = 2 * (f - g) / b + w * 4 * f @ cf / b
    return value, grad


def views(seed, shape=(8, 3), scale=1.0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=shape) * scale).astype("float32") for _ in range(2)]


class SoftOrthogonalAlignmentLossTest(TestCase):
    def test_matches_oracle(self):
        fx, gy = views(0)
        for w in (0.0, 1.0, 0.3):
            self.assertAllClose(
                soft_orthogonal_alignment_loss(fx, gy, w),
                oracle(fx, gy, w)[0],
                atol=1e-5,
                rtol=1e-5,
            )
        _, (grad, _) = value_and_grad(
            lambda a, b: soft_orthogonal_alignment_loss(a, b, 0.3), fx, gy
        )
        self.assertAllClose(grad, oracle(fx, gy, 0.3)[1], atol=1e-5, rtol=1e-5)
        # Zero exactly when both views are equal and satisfy f^T f / B = I.
        z = np.sqrt(4.0) * np.eye(4, 2, dtype="float32")
        self.assertAllClose(soft_orthogonal_alignment_loss(z, z), 0.0)
        fx, gy = views(1, (1, 2))  # B = 1
        self.assertAllClose(
            soft_orthogonal_alignment_loss(fx, gy), oracle(fx, gy)[0], atol=1e-5
        )

    def test_half_precision_and_large_inputs(self):
        fx, gy = views(2)
        for dtype in ("float16", "bfloat16"):
            a, b = ops.cast(fx, dtype), ops.cast(gy, dtype)
            loss = soft_orthogonal_alignment_loss(a, b)
            self.assertEqual(keras.backend.standardize_dtype(loss.dtype), "float32")
            seen = [ops.convert_to_numpy(ops.cast(v, "float32")) for v in (a, b)]
            self.assertAllClose(loss, oracle(*seen)[0], atol=1e-5, rtol=1e-5)
        # Features of magnitude 1e2 (Gram entries 1e4, penalty 1e8): no overflow.
        fx, gy = views(3, scale=1e2)
        loss = soft_orthogonal_alignment_loss(fx, gy)
        self.assertAllClose(loss, oracle(fx, gy)[0], rtol=1e-5)

    def test_loss_class(self):
        fx, gy = views(4)
        loss = SoftOrthogonalAlignmentLoss(orthogonality_weight=0.5)
        self.assertAllClose(loss(fx, gy), oracle(fx, gy, 0.5)[0], atol=1e-5)
        config = loss.get_config()
        self.assertEqual(config["orthogonality_weight"], 0.5)
        serialized = keras.losses.serialize(loss)
        self.assertEqual(
            serialized["registered_name"], "keras_mm>SoftOrthogonalAlignmentLoss"
        )
        revived = keras.losses.deserialize(serialized)
        self.assertIsInstance(revived, SoftOrthogonalAlignmentLoss)
        self.assertEqual(revived.get_config(), config)

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match=r"same shape.*Received: fx shape"):
            soft_orthogonal_alignment_loss(np.ones((2, 3)), np.ones((3, 3)))
        with pytest.raises(ValueError, match="orthogonality_weight.*Received"):
            soft_orthogonal_alignment_loss(np.ones((2, 3)), np.ones((2, 3)), -1.0)
        with pytest.raises(ValueError, match="orthogonality_weight"):
            SoftOrthogonalAlignmentLoss(orthogonality_weight=float("inf"))
