import keras
import numpy as np
import pytest
from keras import ops

from keras_mm.layers import OrthogonalAlignment
from keras_mm.losses import orthogonal_alignment_loss
from keras_mm.testing import TestCase
from tests.losses.backend_utils import single_threaded_torch


def orthonormal(kernel):
    """Oracle: Q of the QR of `kernel` with diag(R) > 0 (Gram-Schmidt)."""
    q, r = np.linalg.qr(np.asarray(kernel, "float64"))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def orthogonality_error(w):
    w = np.asarray(ops.convert_to_numpy(w), "float64")
    return np.linalg.norm(w.T @ w - np.eye(w.shape[1]))


class OrthogonalAlignmentTest(TestCase):
    def test_layer_contract(self):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(4, 6)).astype("float32")
        y = rng.normal(size=(4, 5)).astype("float32")
        self.run_layer_test(
            OrthogonalAlignment,
            {"units": 3},
            [x, y],
            expected_output_shape=[(4, 3), (4, 3)],
            expected_num_trainable_weights=2,
        )

    def test_projections_match_oracle(self):
        rng = np.random.default_rng(1)
        x = rng.normal(size=(5, 6)).astype("float32")
        y = rng.normal(size=(5, 4)).astype("float32")
        layer = OrthogonalAlignment(3)
        layer.build([x.shape, y.shape])
        kx = rng.normal(size=(6, 3)).astype("float32") * 5.0
        ky = rng.normal(size=(4, 3)).astype("float32") * 0.1
        layer.kernel_x.assign(kx)
        layer.kernel_y.assign(ky)
        self.assertAllClose(layer.projection_x, orthonormal(kx), atol=1e-5)
        self.assertAllClose(layer.projection_y, orthonormal(ky), atol=1e-5)
        zx, zy = layer([x, y])
        self.assertAllClose(zx, x @ orthonormal(kx), atol=1e-5, rtol=1e-5)
        self.assertAllClose(zy, y @ orthonormal(ky), atol=1e-5, rtol=1e-5)
        self.assertLess(orthogonality_error(layer.projection_x), 1e-5)
        # Square case: W is a rotation; the projection preserves norms.
        square = OrthogonalAlignment(4)
        zx, _ = square([y, y])
        self.assertAllClose(
            np.linalg.norm(ops.convert_to_numpy(zx), axis=1),
            np.linalg.norm(y, axis=1),
            atol=1e-5,
        )

    def test_stays_orthonormal_for_200_optimizer_steps(self):
        rng = np.random.default_rng(2)
        units, batch, steps = 4, 16, 200
        z = rng.normal(size=(batch * steps, units))
        x = z @ rng.normal(size=(units, 12)) + 0.1 * rng.normal(size=(len(z), 12))
        y = z @ rng.normal(size=(units, 10)) + 0.1 * rng.normal(size=(len(z), 10))
        x, y = x.astype("float32"), y.astype("float32")

        class Aligner(keras.Model):
            def __init__(self):
                super().__init__()
                self.align = OrthogonalAlignment(units)

            def call(self, inputs):
                return self.align(inputs)

            def compute_loss(
                self, x=None, y=None, y_pred=None, sample_weight=None, training=True
            ):
                return orthogonal_alignment_loss(*y_pred)

        def loss_on(model, n=512):
            return float(
                ops.convert_to_numpy(model.compute_loss(y_pred=model([x[:n], y[:n]])))
            )

        model = Aligner()
        model.compile(optimizer=keras.optimizers.Adam(0.05))
        with single_threaded_torch():
            before = loss_on(model)
            history = model.fit(
                [x, y], batch_size=batch, epochs=1, shuffle=False, verbose=0
            )
            after = loss_on(model)
        self.assertEqual(int(ops.convert_to_numpy(model.optimizer.iterations)), steps)
        self.assertTrue(np.isfinite(history.history["loss"][0]))
        self.assertLess(after, 0.5 * before, (before, after))
        # The kernels moved far from orthonormal; W did not.
        kernel = ops.convert_to_numpy(model.align.kernel_x)
        self.assertGreater(orthogonality_error(kernel), 1e-2)
        self.assertLess(orthogonality_error(model.align.projection_x), 1e-5)
        self.assertLess(orthogonality_error(model.align.projection_y), 1e-5)

    def test_saving_round_trip(self):
        rng = np.random.default_rng(3)
        inputs = [keras.Input((6,)), keras.Input((5,))]
        layer = OrthogonalAlignment(2)
        model = keras.Model(inputs, layer(inputs))
        layer.kernel_x.assign(rng.normal(size=(6, 2)))
        data = [
            rng.normal(size=(3, 6)).astype("float32"),
            rng.normal(size=(3, 5)).astype("float32"),
        ]
        restored = self.run_model_saving_test(model, data)
        self.assertAllClose(
            restored.layers[-1].projection_x, layer.projection_x, atol=1e-7
        )

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match=r"units.*<=.*Received: inputs shapes"):
            OrthogonalAlignment(4)([np.ones((2, 6)), np.ones((2, 3))])
        with pytest.raises(ValueError, match=r"exactly 2 views.*Received: inputs"):
            OrthogonalAlignment(2)([np.ones((2, 6))] * 3)
        with pytest.raises(ValueError, match=r"batch size.*Received: inputs"):
            OrthogonalAlignment(2)([np.ones((2, 6)), np.ones((3, 6))])
        with pytest.raises(ValueError, match=r"units.*<="):
            OrthogonalAlignment(4)([keras.Input((6,)), keras.Input((3,))])
        with pytest.raises(ValueError, match="units"):
            OrthogonalAlignment(0)
