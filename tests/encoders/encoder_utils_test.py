import keras
import numpy as np
import pytest

from keras_mm.encoders.encoder_utils import (
    CausalMask,
    ClassToken,
    SequencePooling,
    shape_matches,
    unique_name,
)
from keras_mm.testing import TestCase


class EncoderUtilsTest(TestCase):
    def test_sequence_pooling_matches_numpy(self):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(3, 5, 4)).astype("float32")
        # Row 1 has padding in the middle, row 2 is all padding.
        mask = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 0], [0, 0, 0, 0, 0]], bool)
        ids = np.array([[3, 9, 2, 0, 0], [1, 2, 7, 3, 0], [5, 1, 1, 1, 1]])
        m = mask[..., None]
        expected = {
            "first": x[:, 0],
            "last": x[[0, 1, 2], [2, 3, 4]],  # no real token: the last position
            "mean": np.where(m, x, 0).sum(1) / np.maximum(m.sum(1), 1),
            "max": np.where(mask.any(1)[:, None], np.where(m, x, -np.inf).max(1), 0),
            "argmax": x[[0, 1, 2], [1, 2, 0]],
        }
        for mode, value in expected.items():
            pooled = SequencePooling(mode)(x, padding_mask=mask, token_ids=ids)
            self.assertAllClose(pooled, value, atol=1e-6, msg=mode)
        self.assertAllClose(SequencePooling("mean")(x), x.mean(1), atol=1e-6)
        self.assertAllClose(SequencePooling("last")(x), x[:, -1])
        self.assertAllClose(SequencePooling("max")(x), x.max(1))
        # `offset` drops leading tokens (a class token) before pooling.
        offset = SequencePooling("mean", offset=1)(x, padding_mask=mask)
        m1 = m[:, 1:]
        ref = np.where(m1, x[:, 1:], 0).sum(1) / np.maximum(m1.sum(1), 1)
        self.assertAllClose(offset, ref, atol=1e-6)
        with pytest.raises(ValueError, match="mode"):
            SequencePooling("cls")

    def test_class_token_and_causal_mask(self):
        layer = ClassToken(initializer="ones")
        out = keras.ops.convert_to_numpy(layer(np.zeros((2, 3, 4), "float32")))
        self.assertEqual(out.shape, (2, 4, 4))
        self.assertTrue(np.all(out[:, 0] == 1) and np.all(out[:, 1:] == 0))
        mask = keras.ops.convert_to_numpy(CausalMask()(np.zeros((2, 3, 4))))
        self.assertTrue(
            np.array_equal(mask, np.broadcast_to(np.tri(3, dtype=bool), (2, 3, 3)))
        )

    def test_unique_name(self):
        first = unique_name(None, "utils_test_encoder")
        second = unique_name(None, "utils_test_encoder")
        self.assertEqual(
            (first, second), ("utils_test_encoder", "utils_test_encoder_1")
        )
        self.assertEqual(unique_name("mine", "x"), "mine")
        with pytest.raises(ValueError, match="name"):
            unique_name("a/b", "x")

    def test_shape_matches_ignores_unknown_and_symbolic_sizes(self):
        self.assertTrue(shape_matches((2, 8, 3), (None, 8, 3)))
        self.assertTrue(shape_matches((None, None, 3), (None, 8, 3)))
        self.assertTrue(shape_matches(np.zeros((2, 8, 3)), (None, 8, None)))
        self.assertFalse(shape_matches((2, 8, 4), (None, 8, 3)))
        self.assertFalse(shape_matches((2, 8), (None, 8, 3)))
        if keras.backend.backend() == "jax":
            # The batch size of `jax.export` (jax2tf) tracing: never read as int.
            import jax

            batch = jax.export.symbolic_shape("batch")[0]
            self.assertTrue(shape_matches((batch, 8, 3), (None, 8, 3)))
            self.assertTrue(shape_matches((batch, 8, 3), (2, 8, 3)))
            self.assertFalse(shape_matches((batch, 8, 4), (None, 8, 3)))
