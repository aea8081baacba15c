import keras
import numpy as np
import pytest
from keras import ops

from keras_mm.losses import (
    clip_loss,
    clip_loss_from_embeddings,
    siglip_loss,
    siglip_loss_from_embeddings,
)
from keras_mm.testing import TestCase
from tests.losses.backend_utils import single_threaded_torch, value_and_grad
from tests.losses.clip_loss_test import oracle as clip_oracle
from tests.losses.clip_loss_test import same_group


def embeddings(seed, b, d=32, b_text=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, d))
    y = rng.normal(size=(b if b_text is None else b_text, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    return x.astype("float32"), y.astype("float32")


def siglip_oracle(z, pos):
    z = np.asarray(z, "float64")
    signs = 2.0 * pos - 1.0
    return np.logaddexp(0.0, -signs * z).sum() / z.shape[0]


SCALE, BIAS = np.float32(14.0), np.float32(-6.0)


class TiledContrastiveLossTest(TestCase):
    def assert_same_value_and_grads(self, naive, tiled, *args):
        with single_threaded_torch():
            v0, g0 = value_and_grad(naive, *args)
            v1, g1 = value_and_grad(tiled, *args)
        self.assertAllClose(v1, v0, atol=1e-5, rtol=1e-5)
        self.assertEqual(len(g0), len(g1))
        for a, b in zip(g1, g0):
            self.assertAllClose(a, b, atol=1e-5, rtol=1e-5)
        # The gradients are not trivially zero (a broken backward would match).
        self.assertGreater(max(float(np.abs(g).max()) for g in g0), 1e-4)

    def check_clip(self, b, tile, labels):
        x, y = embeddings(b, b)
        self.assert_same_value_and_grads(
            lambda x, y, s: clip_loss(s * ops.matmul(x, ops.transpose(y)), labels),
            lambda x, y, s: clip_loss_from_embeddings(
                x, y, s, labels=labels, tile_size=tile
            ),
            x,
            y,
            SCALE,
        )

    def check_siglip(self, b, tile, labels):
        x, y = embeddings(b + 1, b)
        self.assert_same_value_and_grads(
            lambda x, y, s, t: siglip_loss(
                s * ops.matmul(x, ops.transpose(y)) + t, labels
            ),
            lambda x, y, s, t: siglip_loss_from_embeddings(
                x, y, s, t, labels=labels, tile_size=tile
            ),
            x,
            y,
            SCALE,
            BIAS,
        )

    def test_b64_matches_naive_and_oracle(self):
        labels = np.random.default_rng(0).integers(0, 40, size=64)  # duplicates
        for lab in (None, labels):
            self.check_clip(64, 16, lab)
            self.check_siglip(64, 16, lab)
        x, y = embeddings(7, 64)
        z = SCALE * (x.astype("float64") @ y.T.astype("float64"))
        pos = same_group(labels)
        self.assertAllClose(
            clip_loss_from_embeddings(x, y, SCALE, labels, tile_size=16),
            clip_oracle(z, pos)[0],
            atol=1e-5,
            rtol=1e-5,
        )
        self.assertAllClose(
            siglip_loss_from_embeddings(x, y, SCALE, BIAS, labels, tile_size=16),
            siglip_oracle(z + BIAS, pos),
            atol=1e-5,
            rtol=1e-5,
        )

    def test_b1024_matches_naive(self):
        labels = np.random.default_rng(1).integers(0, 700, size=1024)
        for lab in (None, labels):
            self.check_clip(1024, 256, lab)
            self.check_siglip(1024, 256, lab)

    @pytest.mark.large
    def test_b4096_matches_naive(self):
        labels = np.random.default_rng(2).integers(0, 3000, size=4096)
        self.check_clip(4096, 1024, labels)
        self.check_siglip(4096, 1024, None)

    def test_remainder_tile_and_label_pair(self):
        # 100 rows in strips of 32: the last strip is zero-padded and masked.
        self.check_clip(100, 32, None)
        self.check_siglip(100, 32, None)
        x, y = embeddings(3, 37, b_text=53)
        rng = np.random.default_rng(3)
        pair = (rng.integers(0, 30, size=37), rng.integers(0, 30, size=53))
        self.assert_same_value_and_grads(
            lambda x, y, s: clip_loss(s * ops.matmul(x, ops.transpose(y)), pair),
            lambda x, y, s: clip_loss_from_embeddings(x, y, s, pair, tile_size=8),
            x,
            y,
            SCALE,
        )
        # SigLIP without labels on non-square input: positives where i == j.
        self.assert_same_value_and_grads(
            lambda x, y, s, t: siglip_loss(s * ops.matmul(x, ops.transpose(y)) + t),
            lambda x, y, s, t: siglip_loss_from_embeddings(x, y, s, t, tile_size=8),
            x,
            y,
            SCALE,
            BIAS,
        )

    def test_positives_matrix_matches_naive(self):
        # 11 images x 14 texts in strips of 4 (the last one padded): the matrix
        # is cut with the rows.
        x, y = embeddings(4, 11, b_text=14)
        pos = (np.random.default_rng(4).random((11, 14)) < 0.2).astype("float32")
        self.assert_same_value_and_grads(
            lambda x, y, s: clip_loss(s * ops.matmul(x, ops.transpose(y)), pos),
            lambda x, y, s: clip_loss_from_embeddings(x, y, s, pos, tile_size=4),
            x,
            y,
            SCALE,
        )
        self.assert_same_value_and_grads(
            lambda x, y, s, t: siglip_loss(
                s * ops.matmul(x, ops.transpose(y)) + t, pos
            ),
            lambda x, y, s, t: siglip_loss_from_embeddings(
                x, y, s, t, labels=pos, tile_size=4
            ),
            x,
            y,
            SCALE,
            BIAS,
        )
        with pytest.raises(ValueError, match=r"matrix `labels` must have shape"):
            clip_loss_from_embeddings(x, y, SCALE, pos[:, :9], tile_size=4)

    def test_empty_batch_matches_naive(self):
        x = np.zeros((0, 4), "float32")
        for fn in (clip_loss_from_embeddings, siglip_loss_from_embeddings):
            naive = keras.ops.convert_to_numpy(fn(x, x, 2.0))
            tiled = keras.ops.convert_to_numpy(fn(x, x, 2.0, tile_size=3))
            np.testing.assert_array_equal(tiled, naive)

    def test_large_logits_are_stable(self):
        x, y = embeddings(4, 48)
        for fn in (clip_loss_from_embeddings, siglip_loss_from_embeddings):
            value = float(fn(x, y, 1e4, tile_size=16))
            self.assertTrue(np.isfinite(value))
            self.assertAllClose(value, float(fn(x, y, 1e4)), rtol=1e-5)

    def test_never_materialises_b_by_b(self):
        if keras.backend.backend() != "jax":
            self.skipTest("inspects the JAX program")
        import jax

        b, tile = 512, 64
        x, y = embeddings(5, b)

        def shapes(fn, *args):
            jaxpr = jax.make_jaxpr(jax.grad(fn, argnums=(0, 1, 2)))(*args)
            found = set()

            def walk(jp):
                for eqn in jp.eqns:
                    for v in eqn.outvars:
                        found.add(tuple(getattr(v.aval, "shape", ())))
                    for p in eqn.params.values():
                        for sub in p if isinstance(p, (list, tuple)) else [p]:
                            if hasattr(sub, "jaxpr"):
                                walk(getattr(sub.jaxpr, "jaxpr", sub.jaxpr))
                            elif hasattr(sub, "eqns"):
                                walk(sub)

            walk(jaxpr.jaxpr)
            return found

        tiled = shapes(
            lambda x, y, s: clip_loss_from_embeddings(x, y, s, tile_size=tile),
            x,
            y,
            SCALE,
        )
        naive = shapes(lambda x, y, s: clip_loss_from_embeddings(x, y, s), x, y, SCALE)
        self.assertIn((b, b), naive)  # the inspection sees a B x B matrix
        self.assertNotIn((b, b), tiled)
        self.assertIn((tile, b), tiled)
        sig = shapes(
            lambda x, y, s: siglip_loss_from_embeddings(x, y, s, -1.0, tile_size=tile),
            x,
            y,
            SCALE,
        )
        self.assertNotIn((b, b), sig)

    def test_tf_function_with_unknown_batch(self):
        if keras.backend.backend() != "tensorflow":
            self.skipTest("tf.function with an unknown batch size")
        import tensorflow as tf

        spec = tf.TensorSpec((None, 32), "float32")

        @tf.function(input_signature=[spec, spec])
        def step(x, y):
            with tf.GradientTape() as tape:
                tape.watch([x, y])
                loss = clip_loss_from_embeddings(x, y, SCALE, tile_size=16)
            return loss, tape.gradient(loss, [x, y])

        x, y = embeddings(6, 40)
        loss, grads = step(x, y)
        v0, g0 = value_and_grad(
            lambda x, y: clip_loss_from_embeddings(x, y, SCALE), x, y
        )
        self.assertAllClose(loss, v0, atol=1e-5)
        self.assertAllClose(grads[0], g0[0], atol=1e-5)
        self.assertAllClose(grads[1], g0[1], atol=1e-5)

    def test_bad_arguments(self):
        x, y = embeddings(0, 8)
        with self.assertRaisesRegex(ValueError, "tile_size"):
            clip_loss_from_embeddings(x, y, 1.0, tile_size=0)
        with self.assertRaisesRegex(ValueError, "embedding size"):
            clip_loss_from_embeddings(x, y[:, :4], 1.0, tile_size=4)
        with self.assertRaisesRegex(ValueError, "same batch size"):
            clip_loss_from_embeddings(x, y[:5], 1.0, tile_size=4)
        with self.assertRaisesRegex(ValueError, "rank 2"):
            siglip_loss_from_embeddings(x[0], y, 1.0, tile_size=4)
