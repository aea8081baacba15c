import keras
import numpy as np
import pytest

from keras_mm.layers import ConcatFusion
from keras_mm.testing import TestCase


def oracle(zs, W1, b1, W2, b2, mask=None):
    """Seed 5.3.1: h = W_2 relu(W_1 [z_1; ...; z_n] + b_1) + b_2."""
    if mask is not None:
        zs = [z * mask[:, i : i + 1] for i, z in enumerate(zs)]
    x = np.concatenate(zs, axis=-1)
    return np.maximum(x @ W1 + b1, 0.0) @ W2 + b2


class ConcatFusionTest(TestCase):
    def _inputs(self, seed=0):
        rng = np.random.default_rng(seed)
        return [
            rng.normal(size=(4, 6)).astype("float32"),
            rng.normal(size=(4, 3)).astype("float32"),
        ]

    def test_layer_contract(self):
        self.run_layer_test(
            ConcatFusion,
            {"hidden_dim": 8, "output_dim": 2, "dropout": 0.1},
            self._inputs(),
            expected_output_shape=(4, 2),
            expected_num_trainable_weights=4,
        )

    def test_symbolic_dtype_is_the_compute_dtype(self):
        # Issue 21 item 9: under mixed_bfloat16 torch traced float32 here.
        from keras_mm.layers import GatedFusion

        keras.config.set_dtype_policy("mixed_bfloat16")
        for layer in (ConcatFusion(hidden_dim=8, output_dim=4), GatedFusion()):
            inputs = [keras.Input((4,)), keras.Input((4,))]
            out = layer(inputs)
            self.assertEqual(keras.backend.standardize_dtype(out.dtype), "bfloat16")
            eager = layer([np.ones((2, 4), "float32")] * 2)
            self.assertEqual(keras.backend.standardize_dtype(eager.dtype), "bfloat16")

    def test_matches_oracle(self):
        zs = self._inputs()
        layer = ConcatFusion(hidden_dim=8, output_dim=2)
        layer.build([z.shape for z in zs])
        rng = np.random.default_rng(1)
        params = [rng.normal(size=w.shape).astype("float32") for w in layer.weights]
        layer.set_weights(params)
        self.assertAllClose(layer(zs), oracle(zs, *params), atol=1e-5, rtol=1e-5)
        mask = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], "float32")
        self.assertAllClose(
            layer(zs, mask=mask), oracle(zs, *params, mask=mask), atol=1e-5, rtol=1e-5
        )

    def test_dropout_only_in_training(self):
        zs = self._inputs()
        layer = ConcatFusion(hidden_dim=64, output_dim=2, dropout=0.5)
        self.assertAllClose(layer(zs, training=False), layer(zs, training=False))
        a = keras.ops.convert_to_numpy(layer(zs, training=True))
        b = keras.ops.convert_to_numpy(layer(zs, training=False))
        self.assertFalse(np.allclose(a, b))

    def test_saving_round_trip(self):
        inputs = [keras.Input((6,)), keras.Input((3,))]
        model = keras.Model(inputs, ConcatFusion(8, 2)(inputs))
        self.run_model_saving_test(model, self._inputs())

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match="at least 2.*Received: inputs shapes"):
            ConcatFusion(4, 2)([np.ones((2, 6))])
        with pytest.raises(ValueError, match="batch size.*Received: inputs shapes"):
            ConcatFusion(4, 2)([np.ones((2, 6)), np.ones((3, 2))])
        with pytest.raises(ValueError, match="rank.*Received: inputs shapes"):
            ConcatFusion(4, 2)([np.ones((2, 6)), np.ones((2, 1, 2))])
        with pytest.raises(ValueError, match=r"mask.*\(2, 2\).*Received: mask shape"):
            ConcatFusion(4, 2)([np.ones((2, 6)), np.ones((2, 2))], mask=np.ones((2, 1)))
        with pytest.raises(ValueError, match="rank"):
            ConcatFusion(4, 2)([keras.Input((6,)), keras.Input((1, 2))])
        for kwargs, arg in (
            ({"hidden_dim": 0, "output_dim": 2}, "hidden_dim"),
            ({"hidden_dim": 4, "output_dim": -1}, "output_dim"),
            ({"hidden_dim": 4, "output_dim": 2, "dropout": 1.0}, "dropout"),
        ):
            with pytest.raises(ValueError, match=arg):
                ConcatFusion(**kwargs)
