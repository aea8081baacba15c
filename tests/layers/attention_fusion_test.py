import keras
import numpy as np
import pytest

from keras_mm.layers import AttentionFusion
from keras_mm.testing import TestCase


def oracle(zs, W, b, v, mask=None):
    """Seed 4.3.1: e_i = v^T tanh(W z_i + b), alpha = softmax(e), h = sum alpha_i z_i.

    `zs` is a list of (batch, d) or (batch, T_i, d) arrays; sequence tokens of all
    modalities are attended jointly. `mask` is (batch, num_tokens) or None.
    """
    z = np.stack(zs, 1) if zs[0].ndim == 2 else np.concatenate(zs, 1)
    e = np.tanh(z @ W + b) @ v  # (batch, tokens)
    if mask is None:
        mask = np.ones_like(e)
    e = e.astype("float64")
    row_max = np.max(np.where(mask > 0, e, -np.inf), axis=1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    w = np.where(mask > 0, np.exp(e - row_max), 0.0)
    alpha = w / np.maximum(w.sum(1, keepdims=True), 1e-300)
    return (alpha[..., None] * z).sum(1), alpha


class AttentionFusionTest(TestCase):
    def _layer(self, d=6, units=5, seed=0):
        rng = np.random.default_rng(seed)
        layer = AttentionFusion(units)
        W = rng.normal(size=(d, units)).astype("float32")
        b = rng.normal(size=(units,)).astype("float32")
        v = rng.normal(size=(units,)).astype("float32")
        return layer, W, b, v

    def _set(self, layer, shapes, W, b, v):
        layer.build(shapes)
        layer.kernel.assign(W)
        layer.bias.assign(b)
        layer.score_vector.assign(v)

    def test_layer_contract(self):
        rng = np.random.default_rng(1)
        zs = [rng.normal(size=(4, 6)).astype("float32") for _ in range(3)]
        self.run_layer_test(
            AttentionFusion,
            {"units": 5},
            zs,
            expected_output_shape=(4, 6),
            expected_num_trainable_weights=3,
        )

    def test_vectors_match_oracle(self):
        rng = np.random.default_rng(2)
        zs = [rng.normal(size=(4, 6)).astype("float32") for _ in range(3)]
        layer, W, b, v = self._layer()
        self._set(layer, [z.shape for z in zs], W, b, v)
        h, alpha = layer(zs, return_attention_scores=True)
        h_ref, alpha_ref = oracle(zs, W, b, v)
        self.assertAllClose(h, h_ref, atol=1e-5, rtol=1e-5)
        self.assertAllClose(alpha, alpha_ref, atol=1e-5, rtol=1e-5)
        self.assertAllClose(np.sum(keras.ops.convert_to_numpy(alpha), 1), np.ones(4))
        self.assertEqual(tuple(alpha.shape), (4, 3))

    def test_modality_mask_gives_exact_zero_weight(self):
        rng = np.random.default_rng(3)
        zs = [rng.normal(size=(4, 6)).astype("float32") for _ in range(3)]
        mask = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 1, 0]], bool)
        layer, W, b, v = self._layer()
        self._set(layer, [z.shape for z in zs], W, b, v)
        h, alpha = layer(zs, mask=mask, return_attention_scores=True)
        alpha = keras.ops.convert_to_numpy(alpha)
        h_ref, alpha_ref = oracle(zs, W, b, v, mask.astype("float32"))
        self.assertAllClose(h, h_ref, atol=1e-5, rtol=1e-5)
        self.assertTrue(np.all(alpha[~mask] == 0.0))
        self.assertAllClose(alpha.sum(1), np.ones(4), atol=1e-6)
        # A missing modality cannot influence the output, whatever its values.
        zs2 = [z.copy() for z in zs]
        zs2[0][2:] = 1e3
        h2 = layer(zs2, mask=mask)
        self.assertAllClose(h2[2:], h[2:], atol=1e-6)

    def test_all_masked_row_is_zero_not_nan(self):
        zs = [np.ones((2, 6), "float32"), np.ones((2, 6), "float32")]
        layer = AttentionFusion(3)
        h = layer(zs, mask=np.array([[0, 0], [1, 1]], bool))
        h = keras.ops.convert_to_numpy(h)
        self.assertTrue(np.all(h[0] == 0.0))
        self.assertTrue(np.all(np.isfinite(h)))

    def test_sequences_attend_over_all_tokens_with_padding(self):
        rng = np.random.default_rng(4)
        zs = [
            rng.normal(size=(3, 4, 6)).astype("float32"),
            rng.normal(size=(3, 2, 6)).astype("float32"),
        ]
        masks = [
            np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], bool),
            np.array([[1, 1], [1, 0], [0, 0]], bool),
        ]
        layer, W, b, v = self._layer()
        self._set(layer, [z.shape for z in zs], W, b, v)
        h, alpha = layer(zs, mask=masks, return_attention_scores=True)
        token_mask = np.concatenate(masks, 1).astype("float32")
        h_ref, alpha_ref = oracle(zs, W, b, v, token_mask)
        self.assertEqual(tuple(alpha.shape), (3, 6))
        self.assertAllClose(h, h_ref, atol=1e-5, rtol=1e-5)
        self.assertAllClose(alpha, alpha_ref, atol=1e-5, rtol=1e-5)
        alpha = keras.ops.convert_to_numpy(alpha)
        self.assertTrue(np.all(alpha[token_mask == 0] == 0.0))
        # It really attends: the weights are not uniform.
        self.assertGreater(np.std(alpha[2]), 1e-3)

    def test_keras_padding_masks_propagate_in_functional_model(self):
        rng = np.random.default_rng(5)
        a = keras.Input((4,), dtype="int32")
        c = keras.Input((3,), dtype="int32")
        emb_a = keras.layers.Embedding(10, 6, mask_zero=True)
        emb_c = keras.layers.Embedding(10, 6, mask_zero=True)
        layer = AttentionFusion(5)
        h, alpha = layer([emb_a(a), emb_c(c)], return_attention_scores=True)
        model = keras.Model([a, c], [h, alpha])
        ids_a = np.array([[1, 2, 0, 0], [3, 4, 5, 6]], "int32")
        ids_c = np.array([[7, 0, 0], [0, 0, 0]], "int32")
        h, alpha = model.predict([ids_a, ids_c], verbose=0)
        za = keras.ops.convert_to_numpy(emb_a(ids_a))
        zc = keras.ops.convert_to_numpy(emb_c(ids_c))
        W, b, v = (keras.ops.convert_to_numpy(w) for w in layer.weights)
        token_mask = np.concatenate([ids_a != 0, ids_c != 0], 1).astype("float32")
        h_ref, alpha_ref = oracle([za, zc], W, b, v, token_mask)
        self.assertAllClose(h, h_ref, atol=1e-5, rtol=1e-5)
        self.assertAllClose(alpha, alpha_ref, atol=1e-5, rtol=1e-5)
        del rng

    def test_saving_round_trip(self):
        rng = np.random.default_rng(6)
        inputs = [keras.Input((6,)), keras.Input((6,))]
        model = keras.Model(inputs, AttentionFusion(4)(inputs))
        data = [rng.normal(size=(3, 6)).astype("float32") for _ in range(2)]
        self.run_model_saving_test(model, data)

    def test_bad_inputs(self):
        layer = AttentionFusion(4)
        cases = [
            ([np.ones((2, 6))], "at least 2"),
            ([np.ones((2, 6)), np.ones((3, 6))], "batch size"),
            ([np.ones((2, 6)), np.ones((2, 5))], "feature size"),
            ([np.ones((2, 6)), np.ones((2, 1, 6))], "rank"),
            ([np.ones((6,)), np.ones((6,))], "rank"),
        ]
        for inputs, words in cases:
            with pytest.raises(ValueError, match=words) as info:
                AttentionFusion(4)(inputs)
            self.assertIn("inputs", str(info.value))
            self.assertIn("Received", str(info.value))
        with pytest.raises(ValueError, match="mask.*\\(2, 2\\).*Received"):
            layer([np.ones((2, 6)), np.ones((2, 6))], mask=np.ones((2, 3)))
        # The same errors while building a functional model.
        with pytest.raises(ValueError, match="feature size.*Received"):
            AttentionFusion(4)([keras.Input((6,)), keras.Input((5,))])
        with pytest.raises(ValueError, match="at least 2"):
            AttentionFusion(4)([keras.Input((6,))])
        with pytest.raises(ValueError, match="mask"):
            AttentionFusion(4)(
                [keras.Input((6,)), keras.Input((6,))], mask=keras.Input((3,))
            )
        with pytest.raises(ValueError, match="units"):
            AttentionFusion(0)
