import keras
import numpy as np
import pytest
from keras import ops

from keras_mm.layers import LinearCCA
from keras_mm.losses import DeepCCALoss, deep_cca_loss
from keras_mm.testing import TestCase
from tests.losses.backend_utils import single_threaded_torch, value_and_grad


def inverse_sqrt(s):
    w, v = np.linalg.eigh(s)
    return (v / np.sqrt(w)) @ v.T


def oracle(x, y, eps=1e-3, k=None):
    """Andrew et al. 2013, section 3: value -sum_k sigma_k(T) and its gradients.

    T = Sxx^-1/2 Sxy Syy^-1/2 on centred features with ridge eps, and the
    closed-form gradient of the paper: dcorr/dH_x = (2 H_x D11 + H_y D12^T)/(m-1),
    D12 = Sxx^-1/2 U_k V_k^T Syy^-1/2, D11 = -1/2 Sxx^-1/2 U_k S_k U_k^T Sxx^-1/2.
    """
    x, y = np.asarray(x, "float64"), np.asarray(y, "float64")
    m = len(x)
    hx, hy = x - x.mean(0), y - y.mean(0)
    sxx = hx.T @ hx / (m - 1) + eps * np.eye(x.shape[1])
    syy = hy.T @ hy / (m - 1) + eps * np.eye(y.shape[1])
    sxy = hx.T @ hy / (m - 1)
    a, b = inverse_sqrt(sxx), inverse_sqrt(syy)
    u, s, vt = np.linalg.svd(a @ sxy @ b)
    k = k or min(x.shape[1], y.shape[1])
    uk, sk, vk = u[:, :k], s[:k], vt[:k].T
    d12 = a @ uk @ vk.T @ b
    d11 = -0.5 * a @ uk @ np.diag(sk) @ uk.T @ a
    d22 = -0.5 * b @ vk @ np.diag(sk) @ vk.T @ b
    gx = (2 * hx @ d11 + hy @ d12.T) / (m - 1)
    gy = (2 * hy @ d22 + hx @ d12) / (m - 1)
    return -sk.sum(), -gx, -gy


def correlated_views(seed, m=48, dx=5, dy=4, rho=(0.9, 0.6, 0.3)):
    """Views whose first canonical correlations are about `rho`."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(m, len(rho)))
    rho = np.asarray(rho)
    x = np.concatenate([z, rng.normal(size=(m, dx - len(rho)))], 1)
    noise = rng.normal(size=(m, len(rho)))
    y = np.concatenate(
        [rho * z + np.sqrt(1 - rho**2) * noise, rng.normal(size=(m, dy - len(rho)))], 1
    )

    def mix(d):  # well-conditioned: a rotation times scales in [0.5, 2]
        q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        return q * rng.uniform(0.5, 2.0, size=d)

    return (x @ mix(dx)).astype("float32"), (y @ mix(dy)).astype("float32")


def finite(*arrays):
    return all(np.all(np.isfinite(np.asarray(a))) for a in arrays)


class DeepCCALossTest(TestCase):
    def test_matches_oracle(self):
        x, y = correlated_views(0)
        for k in (None, 2, 1):
            self.assertAllClose(
                deep_cca_loss(x, y, num_components=k),
                oracle(x, y, k=k)[0],
                atol=1e-5,
                rtol=1e-5,
            )
        # A larger ridge, and the known correlations on a big sample.
        self.assertAllClose(
            deep_cca_loss(x, y, epsilon=0.5), oracle(x, y, 0.5)[0], atol=1e-5
        )
        x, y = correlated_views(1, m=4000)
        self.assertAllClose(deep_cca_loss(x, y, 1e-6, 3), -(0.9 + 0.6 + 0.3), atol=0.05)

    def test_gradient_matches_closed_form(self):
        x, y = correlated_views(2)
        for k in (None, 2):
            value, (gx, gy) = value_and_grad(
                lambda a, b: deep_cca_loss(a, b, num_components=k), x, y
            )
            expected, ox, oy = oracle(x, y, k=k)
            self.assertAllClose(value, expected, atol=1e-5, rtol=1e-5)
            self.assertAllClose(gx, ox, atol=1e-5, rtol=1e-4)
            self.assertAllClose(gy, oy, atol=1e-5, rtol=1e-4)

    def test_no_nan_for_repeated_eigen_and_singular_values(self):
        rng = np.random.default_rng(3)
        m = 24
        x, _ = correlated_views(3, m=m)
        # Centred orthonormal columns scaled so that Sxx = I exactly: every
        # eigenvalue repeated.
        q, _ = np.linalg.qr(rng.normal(size=(m, 4)) - 0.0)
        q = q - q.mean(0)
        q, _ = np.linalg.qr(q)
        white = (np.sqrt(m - 1) * q).astype("float32")
        constant = x.copy()
        constant[:, 1] = 3.0  # zero-variance feature: covariance = eps only
        cases = [
            (x, x),  # identical views: all correlations 1, repeated singular values
            (white, white),
            (white, white[:, ::-1].copy()),
            (constant, constant),
            (np.zeros_like(x), x),  # one view carries no signal
        ]
        for a, b in cases:
            value, grads = value_and_grad(lambda u, v: deep_cca_loss(u, v), a, b)
            self.assertTrue(finite(value, *grads), (value, grads))
        self.assertAllClose(
            value_and_grad(deep_cca_loss, white, white)[0], -4.0 / 1.001, atol=1e-5
        )

    def test_half_precision_and_large_inputs(self):
        x, y = correlated_views(4)
        for dtype in ("float16", "bfloat16"):
            a, b = ops.cast(x, dtype), ops.cast(y, dtype)
            loss = deep_cca_loss(a, b)
            self.assertEqual(keras.backend.standardize_dtype(loss.dtype), "float32")
            seen = [ops.convert_to_numpy(ops.cast(v, "float32")) for v in (a, b)]
            self.assertAllClose(loss, oracle(*seen)[0], atol=1e-5, rtol=1e-5)
        # Features of magnitude 1e4: covariances of 1e8, no overflow.
        big_x, big_y = x * 1e4, y * 1e4
        value, grads = value_and_grad(deep_cca_loss, big_x, big_y)
        self.assertTrue(finite(value, *grads))
        self.assertAllClose(value, oracle(big_x, big_y)[0], atol=1e-5, rtol=1e-5)

    def test_loss_class(self):
        x, y = correlated_views(5)
        loss = DeepCCALoss(epsilon=1e-2, num_components=2)
        self.assertAllClose(loss(x, y), oracle(x, y, 1e-2, 2)[0], atol=1e-5)
        config = loss.get_config()
        self.assertEqual((config["epsilon"], config["num_components"]), (1e-2, 2))
        serialized = keras.losses.serialize(loss)
        self.assertEqual(serialized["registered_name"], "keras_mm>DeepCCALoss")
        revived = keras.losses.deserialize(serialized)
        self.assertIsInstance(revived, DeepCCALoss)
        self.assertEqual(revived.get_config(), config)

    def test_bad_inputs(self):
        x = np.ones((6, 8), "float32")
        with pytest.raises(
            ValueError,
            match=r"more examples than features.*9.*"
            r"Received: zx shape=\(6, 8\)",
        ):
            deep_cca_loss(x, np.ones((6, 2)))
        with pytest.raises(ValueError, match="more examples than features"):
            deep_cca_loss(np.ones((1, 1)), np.ones((1, 1)))  # B = 1
        with pytest.raises(ValueError, match=r"num_components.*<= .*= 2.*Received"):
            deep_cca_loss(np.ones((9, 3)), np.ones((9, 2)), num_components=3)
        with pytest.raises(ValueError, match="same batch size.*Received: zx"):
            deep_cca_loss(np.ones((9, 3)), np.ones((10, 3)))
        with pytest.raises(ValueError, match=r"`zx`.*rank 2.*Received: zx shape"):
            deep_cca_loss(np.ones((9,)), np.ones((9, 2)))
        with pytest.raises(ValueError, match="epsilon.*Received: epsilon"):
            deep_cca_loss(np.ones((9, 2)), np.ones((9, 2)), epsilon=0.0)
        with pytest.raises(ValueError, match="num_components.*Received"):
            DeepCCALoss(num_components=0)


def digits_views():
    """Left and right halves of scikit-learn's 8x8 digits, split 1200 / 597."""
    from sklearn.datasets import load_digits

    images = load_digits().images.astype("float32") / 16.0
    left, right = images[:, :, :4].reshape(-1, 32), images[:, :, 4:].reshape(-1, 32)
    order = np.random.default_rng(0).permutation(len(images))
    train, test = order[:1200], order[1200:]
    return (left[train], right[train]), (left[test], right[test])


def held_out_correlation(cca, x, y):
    """Sum over components of the test-set correlation of the canonical variates."""
    a, b = (ops.convert_to_numpy(v).astype("float64") for v in cca([x, y]))
    a, b = a - a.mean(0), b - b.mean(0)
    return float(np.sum((a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))))


class DeepCCA(keras.Model):
    """Two MLP towers trained with the Deep CCA objective in `compute_loss`."""

    def __init__(self, units, hidden=64, **kwargs):
        super().__init__(**kwargs)

        def tower():
            return keras.Sequential(
                [
                    keras.layers.Dense(hidden, activation="tanh"),
                    keras.layers.Dense(hidden, activation="tanh"),
                    keras.layers.Dense(units),
                ]
            )

        self.f, self.g = tower(), tower()
        self.cca_loss = DeepCCALoss(epsilon=1e-3)

    def call(self, inputs):
        return [self.f(inputs[0]), self.g(inputs[1])]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, **kw):
        return self.cca_loss(y_pred[0], y_pred[1])


@pytest.mark.large
class DeepCCADigitsTest(TestCase):
    def test_deep_cca_beats_linear_cca_on_held_out_digits(self):
        units, steps, batch = 10, 1000, 64
        (x_train, y_train), (x_test, y_test) = digits_views()
        linear = LinearCCA(units)
        linear.adapt(x_train, y_train)
        linear_corr = held_out_correlation(linear, x_test, y_test)

        rng = np.random.default_rng(1)
        repeats = steps * batch // len(x_train) + 1
        order = np.concatenate([rng.permutation(len(x_train)) for _ in range(repeats)])
        order = order[: steps * batch]
        model = DeepCCA(units)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        with single_threaded_torch():
            history = model.fit(
                [x_train[order], y_train[order]],
                batch_size=batch,
                epochs=1,
                shuffle=False,
                verbose=0,
            )
            self.assertEqual(model.optimizer.iterations.numpy(), steps)
            features_train = model.predict([x_train, y_train], verbose=0)
            features_test = model.predict([x_test, y_test], verbose=0)
        self.assertTrue(finite(history.history["loss"], *features_train))
        self.assertTrue(finite(*(ops.convert_to_numpy(w) for w in model.weights)))
        self.assertTrue(finite(*features_test))
        # Held-out evaluation: linear CCA of the network outputs, fitted on the
        # training split, scored on the test split.
        deep = LinearCCA(units)
        deep.adapt(*features_train)
        deep_corr = held_out_correlation(deep, *features_test)
        self.assertGreater(deep_corr, linear_corr + 1.0, (deep_corr, linear_corr))
