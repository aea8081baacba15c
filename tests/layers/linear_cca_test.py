import keras
import numpy as np
import pytest
from keras import ops

from keras_mm.layers import LinearCCA
from keras_mm.testing import TestCase


def cca_oracle(x, y, eps=0.0):
    """Closed-form CCA by the generalised eigenproblem (Hotelling 1936).

    Sxx^-1 Sxy Syy^-1 Syx a = rho^2 a; returns all rho, largest first. A
    different route from the layer's whitening + SVD.
    """
    x, y = np.asarray(x, "float64"), np.asarray(y, "float64")
    n = len(x)
    hx, hy = x - x.mean(0), y - y.mean(0)
    sxx = hx.T @ hx / (n - 1) + eps * np.eye(x.shape[1])
    syy = hy.T @ hy / (n - 1) + eps * np.eye(y.shape[1])
    sxy = hx.T @ hy / (n - 1)
    m = np.linalg.solve(sxx, sxy) @ np.linalg.solve(syy, sxy.T)
    rho2 = np.sort(np.real(np.linalg.eigvals(m)))[::-1]
    return np.sqrt(np.clip(rho2, 0, None))


def correlated_views(seed, n=2000, dx=6, dy=5, rho=(0.95, 0.7, 0.4)):
    rng = np.random.default_rng(seed)
    rho = np.asarray(rho)
    z = rng.normal(size=(n, len(rho)))
    x = np.concatenate([z, rng.normal(size=(n, dx - len(rho)))], 1)
    y = np.concatenate(
        [
            rho * z + np.sqrt(1 - rho**2) * rng.normal(size=(n, len(rho))),
            rng.normal(size=(n, dy - len(rho))),
        ],
        1,
    )

    def mix(d):
        q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        return q * rng.uniform(0.5, 2.0, size=d)

    return (x @ mix(dx) + 3.0).astype("float32"), (y @ mix(dy) - 1.0).astype("float32")


def column_correlations(a, b):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    a, b = a - a.mean(0), b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


class LinearCCATest(TestCase):
    def test_layer_contract(self):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(4, 6)).astype("float32")
        y = rng.normal(size=(4, 5)).astype("float32")
        self.run_layer_test(
            LinearCCA,
            {"units": 3, "epsilon": 0.01},
            [x, y],
            expected_output_shape=[(4, 3), (4, 3)],
            expected_num_trainable_weights=0,
            expected_num_non_trainable_weights=5,
        )

    def test_adapt_matches_closed_form_cca(self):
        x, y = correlated_views(1)
        for eps in (0.0, 0.05):
            cca = LinearCCA(4, epsilon=eps)
            cca.adapt(x, y)
            self.assertAllClose(
                cca.canonical_correlations, cca_oracle(x, y, eps)[:4], atol=1e-4
            )
        # The sample recovers the correlations the data were built with.
        cca = LinearCCA(4, epsilon=0.0)
        cca.adapt(x, y)
        rho = ops.convert_to_numpy(cca.canonical_correlations)
        self.assertAllClose(rho[:3], np.array([0.95, 0.7, 0.4]), atol=0.05)
        self.assertLess(rho[3], 0.1)

    def test_call_returns_canonical_variates(self):
        x, y = correlated_views(2)
        cca = LinearCCA(3, epsilon=0.0)
        cca.adapt(x, y)
        a, b = (ops.convert_to_numpy(v) for v in cca([x, y]))
        rho = ops.convert_to_numpy(cca.canonical_correlations)
        self.assertAllClose(column_correlations(a, b), rho, atol=1e-4)
        # Unit variance, zero mean, uncorrelated components.
        for v in (a, b):
            self.assertAllClose(np.cov(v.T, ddof=1), np.eye(3), atol=1e-4)
            self.assertAllClose(v.mean(0), np.zeros(3), atol=1e-4)
        self.assertAllClose(np.corrcoef(a.T, b.T)[:3, 3:], np.diag(rho), atol=1e-4)

    def test_saving_round_trip(self):
        x, y = correlated_views(3, n=200)
        inputs = [keras.Input((6,)), keras.Input((5,))]
        cca = LinearCCA(2)
        model = keras.Model(inputs, cca(inputs))
        cca.adapt(x, y)
        restored = self.run_model_saving_test(model, [x[:8], y[:8]])
        self.assertAllClose(
            restored.layers[-1].canonical_correlations, cca.canonical_correlations
        )

    def test_bad_inputs(self):
        x, y = correlated_views(4, n=50)
        with pytest.raises(ValueError, match=r"batch size.*Received: adapt inputs"):
            LinearCCA(2).adapt(x, y[:10])
        with pytest.raises(ValueError, match=r"units.*<=.*Received: adapt inputs"):
            LinearCCA(6).adapt(x, y)
        with pytest.raises(ValueError, match=r"more examples than `units`"):
            LinearCCA(3).adapt(x[:3], y[:3])
        constant = x.copy()
        constant[:, 0] = 1.0
        with pytest.raises(ValueError, match=r"singular.*epsilon > 0"):
            LinearCCA(2, epsilon=0.0).adapt(constant, y)
        LinearCCA(2, epsilon=1e-3).adapt(constant, y)  # the ridge handles it
        with pytest.raises(ValueError, match=r"units.*<=.*Received: inputs"):
            LinearCCA(3)([keras.Input((2,)), keras.Input((5,))])
        with pytest.raises(ValueError, match="epsilon"):
            LinearCCA(2, epsilon=-1.0)
        with pytest.raises(ValueError, match="units"):
            LinearCCA(0)
