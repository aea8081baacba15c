import keras
import numpy as np
import pytest
from keras import ops

from keras_mm.losses import CLIPLoss, clip_loss
from keras_mm.testing import TestCase
from tests.losses.backend_utils import value_and_grad


def log_softmax(z, axis):
    m = z.max(axis=axis, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def oracle(z, pos=None):
    """Symmetric InfoNCE with uniform soft targets; value and d loss / d z.

    `pos` is the (B_i, B_t) 0/1 matrix of positives (identity when None). Rows
    or columns without a positive are left out of their mean.
    """
    z = np.asarray(z, "float64")
    pos = np.eye(*z.shape) if pos is None else np.asarray(pos, "float64")
    rows, cols = pos.sum(1) > 0, pos.sum(0) > 0
    t_row = pos / np.maximum(pos.sum(1, keepdims=True), 1)
    t_col = pos / np.maximum(pos.sum(0, keepdims=True), 1)
    row_ce = -(t_row * log_softmax(z, 1)).sum(1)
    col_ce = -(t_col * log_softmax(z, 0)).sum(0)
    loss = 0.5 * (row_ce[rows].mean() + col_ce[cols].mean())
    g_row = (np.exp(log_softmax(z, 1)) - t_row) * rows[:, None] / rows.sum()
    g_col = (np.exp(log_softmax(z, 0)) - t_col) * cols[None, :] / cols.sum()
    per_pair = 0.5 * (row_ce + col_ce) if z.shape[0] == z.shape[1] else None
    return loss, 0.5 * (g_row + g_col), per_pair


def same_group(a, b=None):
    b = a if b is None else b
    return (np.asarray(a)[:, None] == np.asarray(b)[None, :]).astype("float64")


def logits(seed, shape=(6, 6), scale=3.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype("float32")


class CLIPLossTest(TestCase):
    def test_diagonal_positives_match_oracle(self):
        z = logits(0)
        self.assertAllClose(clip_loss(z), oracle(z)[0], atol=1e-5, rtol=1e-5)
        # Without labels it is CLIP's (CE(z, arange) + CE(z^T, arange)) / 2.
        ce = -np.mean(np.diag(log_softmax(z.astype("float64"), 1)))
        ce_t = -np.mean(np.diag(log_softmax(z.astype("float64"), 0)))
        self.assertAllClose(clip_loss(z), 0.5 * (ce + ce_t), atol=1e-5, rtol=1e-5)

    def test_multi_positive_labels(self):
        z = logits(1)
        labels = np.array([0, 1, 1, 2, 0, 3], "int32")
        expected = oracle(z, same_group(labels))[0]
        self.assertAllClose(clip_loss(z, labels), expected, atol=1e-5, rtol=1e-5)
        # Duplicates are not punished: two identical captions of one image,
        # each scored highest by that image, give a lower loss with labels.
        z = np.full((2, 2), 10.0, "float32")
        self.assertAllClose(clip_loss(z, np.array([7, 7])), np.log(2.0), atol=1e-6)
        self.assertAllClose(clip_loss(z), np.log(2.0), atol=1e-6)
        self.assertLess(float(clip_loss(z, np.array([7, 7]))), 0.7)
        # All-distinct labels are the diagonal case.
        self.assertAllClose(clip_loss(logits(2), np.arange(6)), clip_loss(logits(2)))

    def test_non_square_with_label_pair(self):
        z = logits(3, shape=(4, 7))
        image_ids = np.array([0, 1, 2, 3])
        text_ids = np.array([0, 0, 1, 2, 2, 3, 9])  # text 6 matches no image
        expected = oracle(z, same_group(image_ids, text_ids))[0]
        actual = clip_loss(z, (image_ids, text_ids))
        self.assertAllClose(actual, expected, atol=1e-5, rtol=1e-5)

    def test_positives_matrix(self):
        # A caption may fit several images and an image several captions in a
        # pattern no group ids can express ("a red shape" vs "a red circle").
        z = logits(5, shape=(4, 5))
        pos = np.array(
            [[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [1, 0, 0, 0, 0]],
            "float32",
        )  # text 4 fits no image: left out of the column mean
        self.assertAllClose(clip_loss(z, pos), oracle(z, pos)[0], atol=1e-5)
        labels = np.array([0, 1, 1, 2, 0, 3], "int32")
        z = logits(6)
        self.assertAllClose(
            clip_loss(z, same_group(labels).astype("float32")), clip_loss(z, labels)
        )
        with pytest.raises(ValueError, match="matrix `labels` must have the shape"):
            clip_loss(z, np.ones((6, 5), "float32"))

    def test_half_precision_inputs_compute_in_float32(self):
        z = logits(4)
        for dtype in ("float16", "bfloat16"):
            zh = ops.cast(z, dtype)
            seen = ops.convert_to_numpy(ops.cast(zh, "float32"))
            loss = clip_loss(zh, np.array([0, 1, 1, 2, 0, 3]))
            self.assertEqual(keras.backend.standardize_dtype(loss.dtype), "float32")
            expected = oracle(seen, same_group([0, 1, 1, 2, 0, 3]))[0]
            self.assertAllClose(loss, expected, atol=1e-5, rtol=1e-5)

    def test_logits_of_magnitude_1e4(self):
        z = logits(5, scale=1e4)
        loss = clip_loss(z)
        self.assertTrue(np.isfinite(ops.convert_to_numpy(loss)))
        self.assertAllClose(loss, oracle(z)[0], atol=1e-5, rtol=1e-5)
        self.assertAllClose(clip_loss(np.eye(4, dtype="float32") * 1e4), 0.0)
        self.assertAllClose(
            clip_loss(-np.eye(4, dtype="float32") * 1e4), 1e4 + np.log(3)
        )
        _, (grad,) = value_and_grad(clip_loss, z)
        self.assertAllClose(grad, oracle(z)[1], atol=1e-5, rtol=1e-5)

    def test_batch_of_one(self):
        self.assertAllClose(clip_loss(np.array([[3.0]], "float32")), 0.0)

    def test_gradient_matches_analytic(self):
        z = logits(6)
        labels = np.array([0, 1, 1, 2, 0, 3])
        value, (grad,) = value_and_grad(clip_loss, z)
        self.assertAllClose(value, oracle(z)[0], atol=1e-5, rtol=1e-5)
        self.assertAllClose(grad, oracle(z)[1], atol=1e-5, rtol=1e-5)
        _, (grad,) = value_and_grad(lambda t: clip_loss(t, labels), z)
        self.assertAllClose(grad, oracle(z, same_group(labels))[1], atol=1e-5)

    def test_loss_class(self):
        z = logits(7)
        labels = np.array([0, 1, 1, 2, 0, 3])
        loss = CLIPLoss()
        self.assertAllClose(loss(None, z), oracle(z)[0], atol=1e-5, rtol=1e-5)
        self.assertAllClose(loss(y_pred=z), oracle(z)[0], atol=1e-5, rtol=1e-5)
        pos = same_group(labels)
        self.assertAllClose(loss(labels, z), oracle(z, pos)[0], atol=1e-5, rtol=1e-5)
        # Per-pair losses: sample_weight weights pairs.
        per_pair = oracle(z, pos)[2]
        w = np.array([1.0, 0.0, 2.0, 1.0, 0.0, 1.0], "float32")
        self.assertAllClose(
            loss(labels, z, sample_weight=w),
            np.sum(per_pair * w) / 6,
            atol=1e-5,
            rtol=1e-5,
        )
        zr = logits(8, shape=(3, 5))
        ids = (np.array([0, 1, 2]), np.array([0, 1, 2, 2, 1]))
        self.assertAllClose(
            loss(ids, zr),
            oracle(zr, same_group(*ids))[0],
            atol=1e-5,
            rtol=1e-5,
        )
        self.assertAllClose(
            CLIPLoss()(None, ops.cast(z, "bfloat16")),
            clip_loss(ops.cast(z, "bfloat16")),
        )

    def test_serialization(self):
        loss = CLIPLoss(name="my_clip", reduction="sum")
        config = loss.get_config()
        self.assertEqual(CLIPLoss.from_config(config).get_config(), config)
        serialized = keras.losses.serialize(loss)
        self.assertEqual(serialized["registered_name"], "keras_mm>CLIPLoss")
        revived = keras.losses.deserialize(serialized)
        self.assertIsInstance(revived, CLIPLoss)
        self.assertEqual(revived.get_config(), config)
        self.assertIs(keras.losses.get(serialized).__class__, CLIPLoss)

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match=r"logits.*rank 2.*Received: logits"):
            clip_loss(np.ones((4,)))
        with pytest.raises(
            ValueError, match=r"square.*Received: logits shape=\(2, 3\)"
        ):
            clip_loss(np.ones((2, 3)))
        with pytest.raises(ValueError, match=r"`labels`.*\(3,\).*Received: labels"):
            clip_loss(np.ones((3, 3)), np.arange(4))
        with pytest.raises(ValueError, match=r"labels\[1\].*\(3,\).*Received"):
            clip_loss(np.ones((2, 3)), (np.arange(2), np.arange(2)))
        with pytest.raises(ValueError, match=r"square.*Received: logits"):
            CLIPLoss()(None, np.ones((2, 3)))
