import keras
import numpy as np
import pytest

from keras_mm.layers import GatedFusion
from keras_mm.testing import TestCase


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def oracle(zs, params, mask=None):
    """Seed 4.3.2 for n modalities: h = sum_i z_i * sigmoid(W_i z_i + b_i)."""
    h = 0.0
    for i, z in enumerate(zs):
        W, b = params[2 * i], params[2 * i + 1]
        term = z * sigmoid(z @ W + b)
        if mask is not None:
            term = term * mask[:, i : i + 1]
        h = h + term
    return h


class GatedFusionTest(TestCase):
    def _inputs(self, n=3, batch=4, d=5, seed=0):
        rng = np.random.default_rng(seed)
        return [rng.normal(size=(batch, d)).astype("float32") for _ in range(n)]

    def _assign(self, layer, zs, seed=1):
        rng = np.random.default_rng(seed)
        if not layer.built:
            layer.build([z.shape for z in zs])
        params = [rng.normal(size=w.shape).astype("float32") for w in layer.weights]
        for w, p in zip(layer.weights, params):
            w.assign(p)
        return params

    def test_layer_contract(self):
        self.run_layer_test(
            GatedFusion,
            {},
            self._inputs(),
            expected_output_shape=(4, 5),
            expected_num_trainable_weights=6,
        )

    def test_matches_oracle_for_two_and_three_modalities(self):
        for n in (2, 3):
            zs = self._inputs(n=n)
            layer = GatedFusion()
            params = self._assign(layer, zs)
            self.assertAllClose(layer(zs), oracle(zs, params), atol=1e-5, rtol=1e-5)

    def test_weight_order_and_shapes(self):
        zs = self._inputs(n=3, d=5)
        layer = GatedFusion()
        layer.build([z.shape for z in zs])
        shapes = [tuple(w.shape) for w in layer.get_weights()]
        self.assertEqual(shapes, [(5, 5), (5,)] * 3)
        # get_weights()[0] is W_1: changing it changes only modality 1's gate.
        params = self._assign(layer, zs)
        params[0] = params[0] + 1.0
        layer.set_weights(params)
        self.assertAllClose(layer(zs), oracle(zs, params), atol=1e-5, rtol=1e-5)

    def test_mask(self):
        zs = self._inputs(n=3)
        mask = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 0, 0]], "float32")
        layer = GatedFusion()
        params = self._assign(layer, zs)
        out = layer(zs, mask=mask.astype(bool))
        self.assertAllClose(out, oracle(zs, params, mask), atol=1e-5, rtol=1e-5)
        self.assertTrue(np.all(keras.ops.convert_to_numpy(out)[3] == 0.0))

    def test_saving_round_trip(self):
        inputs = [keras.Input((5,)) for _ in range(3)]
        model = keras.Model(inputs, GatedFusion()(inputs))
        self.run_model_saving_test(model, self._inputs())

    def test_bad_inputs(self):
        cases = [
            ([np.ones((2, 6))], "at least 2"),
            ([np.ones((2, 6)), np.ones((3, 6))], "batch size"),
            ([np.ones((2, 6)), np.ones((2, 5))], "feature size"),
            ([np.ones((2, 1, 6)), np.ones((2, 1, 6))], "rank"),
        ]
        for inputs, words in cases:
            with pytest.raises(ValueError, match=f"{words}.*Received: inputs shapes"):
                GatedFusion()(inputs)
        with pytest.raises(ValueError, match=r"mask.*\(2, 2\).*Received: mask shape"):
            GatedFusion()([np.ones((2, 6)), np.ones((2, 6))], mask=np.ones((2, 3)))
        with pytest.raises(ValueError, match="feature size"):
            GatedFusion()([keras.Input((6,)), keras.Input((5,))])
        with pytest.raises(ValueError, match="mask"):
            GatedFusion()(
                [keras.Input((6,)), keras.Input((6,))], mask=keras.Input((3,))
            )
        layer = GatedFusion()
        layer([np.ones((2, 6)), np.ones((2, 6))])
        with pytest.raises(ValueError, match="built for 2 modalities"):
            layer([np.ones((2, 6))] * 3)
