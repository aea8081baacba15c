import keras
import numpy as np
import pytest

from keras_mm.layers import CrossModalAttention
from keras_mm.testing import TestCase

EPS = 1e-5


def layer_norm(x, gamma, beta):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * gamma + beta


def gelu(x):
    from math import erf

    return 0.5 * x * (1.0 + np.vectorize(erf)(x / np.sqrt(2.0)))


def oracle(block, q, c, context_mask=None):
    """Seed 3.3.2 as a pre-LN block:
    x = q + MHA(LN_q(q), LN_c(c)); y = x + W2 gelu(W1 LN_f(x) + b1) + b2."""
    w = lambda v: keras.ops.convert_to_numpy(v).astype("float64")  # noqa: E731
    att = block.attention
    qn = layer_norm(q, w(block.query_norm.gamma), w(block.query_norm.beta))
    cn = layer_norm(c, w(block.context_norm.gamma), w(block.context_norm.beta))
    Q = np.einsum("btd,dhk->bthk", qn, w(att._query_dense.kernel))
    Q = Q + w(att._query_dense.bias)
    K = np.einsum("bsd,dhk->bshk", cn, w(att._key_dense.kernel))
    K = K + w(att._key_dense.bias)
    V = np.einsum("bsd,dhk->bshk", cn, w(att._value_dense.kernel))
    V = V + w(att._value_dense.bias)
    scores = np.einsum("bthk,bshk->bhts", Q, K) / np.sqrt(Q.shape[-1])
    if context_mask is not None:
        scores = np.where(context_mask[:, None, None, :], scores, -np.inf)
    scores = scores - scores.max(-1, keepdims=True)
    probs = np.exp(scores)
    probs = probs / probs.sum(-1, keepdims=True)
    out = np.einsum("bhts,bshk->bthk", probs, V)
    out = np.einsum("bthk,hkd->btd", out, w(att._output_dense.kernel))
    x = q + out + w(att._output_dense.bias)
    f = layer_norm(x, w(block.feedforward_norm.gamma), w(block.feedforward_norm.beta))
    hidden = gelu(
        f @ w(block.intermediate_dense.kernel) + w(block.intermediate_dense.bias)
    )
    y = hidden @ w(block.output_dense.kernel) + w(block.output_dense.bias)
    return x + y, probs


class CrossModalAttentionTest(TestCase):
    def _data(self, seed=0):
        rng = np.random.default_rng(seed)
        q = rng.normal(size=(2, 5, 8)).astype("float32")
        c = rng.normal(size=(2, 7, 6)).astype("float32")
        return q, c

    def _randomize(self, block, seed=1):
        rng = np.random.default_rng(seed)
        for v in block.weights:
            v.assign(0.5 * rng.normal(size=v.shape).astype("float32"))

    def test_layer_contract(self):
        q, c = self._data()
        self.run_layer_test(
            CrossModalAttention,
            {"num_heads": 2, "key_dim": 4, "intermediate_dim": 16},
            {"query": q, "context": c},
            expected_output_shape=(2, 5, 8),
            expected_num_trainable_weights=18,
        )

    def test_matches_oracle_with_context_mask(self):
        q, c = self._data()
        mask = np.array([[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]], bool)
        block = CrossModalAttention(num_heads=2, key_dim=4, intermediate_dim=16)
        block(q, c)
        self._randomize(block)
        for context_mask in (None, mask):
            out, scores = block(
                q, c, context_mask=context_mask, return_attention_scores=True
            )
            ref, ref_scores = oracle(block, q, c, context_mask)
            self.assertAllClose(out, ref, atol=1e-5, rtol=1e-5)
            self.assertAllClose(scores, ref_scores, atol=1e-5, rtol=1e-5)
        scores = keras.ops.convert_to_numpy(scores)
        self.assertTrue(np.all(scores[0, :, :, 4:] == 0.0))
        # Padding content never leaks into the output.
        c2 = c.copy()
        c2[0, 4:] = 100.0
        self.assertAllClose(
            block(q, c2, context_mask=mask)[0], block(q, c, context_mask=mask)[0]
        )

    def test_query_mask_propagates(self):
        q_ids = keras.Input((5,), dtype="int32")
        c = keras.Input((7, 6))
        q = keras.layers.Embedding(10, 8, mask_zero=True)(q_ids)
        block = CrossModalAttention(num_heads=2, key_dim=4, intermediate_dim=16)
        out = block(q, c, query_mask=keras.ops.not_equal(q_ids, 0))
        self.assertEqual(tuple(out.shape), (None, 5, 8))

    def test_saving_round_trip(self):
        q, c = self._data()
        qi, ci = keras.Input((5, 8)), keras.Input((7, 6))
        out = CrossModalAttention(2, 4, 16)(qi, ci)
        model = keras.Model([qi, ci], out)
        self.run_model_saving_test(model, [q, c])

    def test_bad_inputs(self):
        q, c = self._data()
        block = CrossModalAttention(2, 4, 16)
        with pytest.raises(ValueError, match="`query` must be a rank-3.*Received"):
            block(q[:, 0], c)
        with pytest.raises(ValueError, match="`context` must be a rank-3.*Received"):
            block(q, c[:, 0])
        with pytest.raises(ValueError, match="same batch size.*Received"):
            block(q, np.concatenate([c, c]))
        with pytest.raises(ValueError, match=r"context_mask.*\(2, 7\).*Received"):
            block(q, c, context_mask=np.ones((2, 6), bool))
        with pytest.raises(ValueError, match=r"query_mask.*\(2, 5\).*Received"):
            block(q, c, query_mask=np.ones((2, 4), bool))
        with pytest.raises(ValueError, match="context_mask"):
            CrossModalAttention(2, 4, 16)(
                keras.Input((5, 8)), keras.Input((7, 6)), context_mask=keras.Input((3,))
            )
        with pytest.raises(ValueError, match="num_heads"):
            CrossModalAttention(0, 4, 16)
