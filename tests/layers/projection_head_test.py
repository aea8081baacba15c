import keras
import numpy as np
import pytest

from keras_mm.layers import ProjectionHead
from keras_mm.testing import TestCase


def oracle(x, W, b, eps=1e-6, normalize=True):
    p = x @ W + b
    if normalize:
        p = p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), eps)
    return p


class ProjectionHeadTest(TestCase):
    def test_layer_contract(self):
        x = np.random.default_rng(0).normal(size=(3, 8)).astype("float32")
        self.run_layer_test(
            ProjectionHead,
            {"output_dim": 4, "hidden_dim": 16},
            x,
            expected_output_shape=(3, 4),
            expected_num_trainable_weights=4,
        )

    def test_matches_oracle_and_is_unit_norm(self):
        rng = np.random.default_rng(1)
        x = rng.normal(size=(5, 8)).astype("float32")
        for normalize in (True, False):
            head = ProjectionHead(4, normalize=normalize)
            head.build(x.shape)
            W = rng.normal(size=(8, 4)).astype("float32")
            b = rng.normal(size=(4,)).astype("float32")
            head.set_weights([W, b])
            self.assertAllClose(
                head(x), oracle(x, W, b, normalize=normalize), atol=1e-5, rtol=1e-5
            )
        norms = np.linalg.norm(
            keras.ops.convert_to_numpy(ProjectionHead(4)(x)), axis=-1
        )
        self.assertAllClose(norms, np.ones(5), atol=1e-5)

    def test_zero_vector_stays_finite(self):
        head = ProjectionHead(4)
        head.build((2, 3))
        head.set_weights([np.zeros((3, 4), "float32"), np.zeros((4,), "float32")])
        out = keras.ops.convert_to_numpy(head(np.ones((2, 3), "float32")))
        self.assertTrue(np.all(out == 0.0))

    def test_saving_round_trip(self):
        inputs = keras.Input((8,))
        model = keras.Model(inputs, ProjectionHead(4, hidden_dim=6)(inputs))
        x = np.random.default_rng(2).normal(size=(3, 8)).astype("float32")
        self.run_model_saving_test(model, x)

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match="rank >= 2.*Received: inputs shape"):
            ProjectionHead(4)(np.ones((3,), "float32"))
        for kwargs, arg in (
            ({"output_dim": 0}, "output_dim"),
            ({"output_dim": 4, "hidden_dim": 0}, "hidden_dim"),
            ({"output_dim": 4, "epsilon": 0.0}, "epsilon"),
        ):
            with pytest.raises(ValueError, match=arg):
                ProjectionHead(**kwargs)
