"""The encoders' transformer block, and the single-token path of the encoders."""

import keras
import numpy as np
import pytest

from keras_mm.activations import quick_gelu
from keras_mm.encoders import ImageEncoder, TextEncoder
from keras_mm.encoders.encoder_utils import transformer_blocks
from keras_mm.testing import TestCase
from tests.encoders.encoder_checks import forward, layer_norm, to_numpy

D, H, F = 8, 2, 16


def numpy_block(x, weights, key_mask, epsilon=1e-6):
    """Pre-LN block: y = x + MHA(LN1(x)); out = y + W2 gelu(W1 LN2(y) + b1) + b2.

    `key_mask` (batch, T, T): True where query i may attend to key j.
    """
    w = weights
    h = layer_norm(x, w["ln1_g"], w["ln1_b"], epsilon)
    q = np.einsum("btd,dhk->bthk", h, w["q"]) + w["qb"]
    k = np.einsum("btd,dhk->bthk", h, w["k"]) + w["kb"]
    v = np.einsum("btd,dhk->bthk", h, w["v"]) + w["vb"]
    scores = np.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(q.shape[-1])
    scores = np.where(key_mask[:, None], scores, -1e9)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    attended = np.einsum("bhqs,bshk->bqhk", probs, v)
    y = x + np.einsum("bqhk,hkd->bqd", attended, w["o"]) + w["ob"]
    h = layer_norm(y, w["ln2_g"], w["ln2_b"], epsilon) @ w["w1"] + w["b1"]
    h = h / (1 + np.exp(-1.702 * h))  # quick GELU: h * sigmoid(1.702 h)
    return y + h @ w["w2"] + w["b2"]


def block_weights(block):
    attention = block._self_attention_layer
    layers = {
        "ln1": block._self_attention_layer_norm,
        "ln2": block._feedforward_layer_norm,
    }
    w = {f"{n}_g": layer.gamma for n, layer in layers.items()}
    w.update({f"{n}_b": layer.beta for n, layer in layers.items()})
    for n, dense in (("q", "_query_dense"), ("k", "_key_dense"), ("v", "_value_dense")):
        w[n] = getattr(attention, dense).kernel
        w[n + "b"] = getattr(attention, dense).bias
    w["o"], w["ob"] = attention._output_dense.kernel, attention._output_dense.bias
    w["w1"] = block._feedforward_intermediate_dense.kernel
    w["b1"] = block._feedforward_intermediate_dense.bias
    w["w2"] = block._feedforward_output_dense.kernel
    w["b2"] = block._feedforward_output_dense.bias
    return to_numpy(w)


class TransformerBlockTest(TestCase):
    def test_block_and_single_token_path_match_numpy_oracle(self):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(3, 5, D)).astype("float32")
        padding = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool)
        causal = np.tril(np.ones((5, 5), bool))[None].repeat(3, 0)
        (block,) = transformer_blocks(1, H, F, 0.0, quick_gelu, 1e-6, None)
        block.build((None, 5, D))
        for variable in block.weights:  # non-trivial LayerNorm and bias values
            variable.assign(rng.normal(size=variable.shape).astype("float32") * 0.5)
        weights = block_weights(block)
        for attention_mask in (None, causal):
            key_mask = padding[:, None, :].repeat(5, 1)
            if attention_mask is not None:
                key_mask = key_mask & attention_mask
            expected = numpy_block(x.astype("float64"), weights, key_mask)
            full = to_numpy(
                block(x, padding_mask=padding, attention_mask=attention_mask)
            )
            # Rows whose query sees no key are undefined; compare the others.
            real = key_mask.any(-1)
            self.assertAllClose(full[real], expected[real], atol=1e-4, rtol=1e-4)
            last = np.array([2, 4, 1])
            for index, rows in ((0, [0, 0, 0]), (np.array([1, 3, 0]), [1, 3, 0])):
                one = block(
                    x,
                    padding_mask=padding,
                    attention_mask=attention_mask,
                    query_index=index,
                )
                self.assertEqual(tuple(one.shape), (3, 1, D))
                self.assertAllClose(
                    to_numpy(one)[:, 0], expected[np.arange(3), rows], atol=1e-4
                )
            one = block(
                x,
                padding_mask=padding,
                attention_mask=attention_mask,
                query_index="last",
            )
            self.assertAllClose(
                to_numpy(one)[:, 0], expected[np.arange(3), last], atol=1e-4
            )
        symbolic = block(keras.Input((5, D)), query_index=0)
        self.assertEqual(tuple(symbolic.shape), (None, 1, D))

    def test_single_token_path_needs_a_pre_ln_block(self):
        from keras_mm.encoders.transformer_block import TransformerBlock

        block = TransformerBlock(intermediate_dim=F, num_heads=H, normalize_first=False)
        x = np.zeros((1, 3, D), "float32")
        block(x)
        with pytest.raises(ValueError, match="normalize_first"):
            block(x, query_index=0)
        (pre_ln,) = transformer_blocks(1, H, F, 0.0, "relu", 1e-6, None)
        with pytest.raises(ValueError, match="padding_mask"):
            pre_ln(x, query_index="last")

    def _assert_same_model(self, make, data, target):
        """`make(output_mode=...)`: the single-token "pooled" encoder computes the
        pooled output of the full "both" encoder, and one SGD step from the same
        weights leaves the same weights (so the gradients agree too)."""
        pooled, full = make(output_mode="pooled"), make(output_mode="both")
        # The shortcut is taken: the pooled encoder's last block outputs one token.
        tokens = pooled.get_layer("final_layer_norm").output.shape[1]
        self.assertEqual(tokens, 1)
        self.assertGreater(full.get_layer("final_layer_norm").output.shape[1] or 2, 1)
        forward(pooled, data)
        forward(full, data)
        full.set_weights(pooled.get_weights())
        expected = forward(full, data)["pooled_output"]
        self.assertAllClose(forward(pooled, data), expected, atol=1e-5, rtol=1e-5)
        before = pooled.get_weights()
        full_pooled = keras.Model(full.input, full.output["pooled_output"])
        for model in (pooled, full_pooled):
            model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
            model.fit(data, target, batch_size=len(target), epochs=1, verbose=0)
        for a, b in zip(pooled.get_weights(), full.get_weights()):
            self.assertAllClose(a, b, atol=1e-5, rtol=1e-5)
        changed = [not np.allclose(a, b) for a, b in zip(before, full.get_weights())]
        self.assertGreater(sum(changed), len(changed) // 2)

    def test_pooled_image_encoder_computes_only_the_class_token(self):
        rng = np.random.default_rng(1)
        images = rng.random((3, 8, 8, 3)).astype("float32")
        target = rng.normal(size=(3, D)).astype("float32")
        self._assert_same_model(
            lambda **kw: ImageEncoder(
                image_shape=(8, 8, 3),
                patch_size=4,
                hidden_dim=D,
                num_layers=2,
                num_heads=H,
                intermediate_dim=F,
                activation="quick_gelu",
                **kw,
            ),
            images,
            target,
        )

    def test_pooled_text_encoder_computes_only_the_pooled_token(self):
        rng = np.random.default_rng(2)
        ids = np.array([[3, 4, 5, 0, 0], [7, 8, 9, 10, 11], [12, 0, 0, 0, 0]], "int32")
        target = rng.normal(size=(3, D)).astype("float32")
        for pooling in ("first", "last"):
            for causal in (False, True):
                self._assert_same_model(
                    lambda **kw: TextEncoder(
                        vocabulary_size=20,
                        max_sequence_length=5,
                        hidden_dim=D,
                        num_layers=2,
                        num_heads=H,
                        intermediate_dim=F,
                        pooling=pooling,
                        causal=causal,
                        **kw,
                    ),
                    {"token_ids": ids, "padding_mask": ids != 0},
                    target,
                )
