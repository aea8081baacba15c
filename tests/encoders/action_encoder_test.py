import math

import keras
import numpy as np
import pytest

from keras_mm.encoders import ActionEncoder
from keras_mm.testing import TestCase
from tests.encoders.encoder_checks import (
    assert_nested_round_trip,
    check_contract,
    forward,
    layer_norm,
)

VECTOR = dict(action_dim=3, hidden_dim=8, num_layers=1, intermediate_dim=16)
TRAJECTORY = dict(VECTOR, max_sequence_length=4, num_heads=2)

_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


class ActionEncoderTest(TestCase):
    def test_layer_contract_vectors(self):
        actions = np.random.default_rng(0).normal(size=(2, 3)).astype("float32")
        check_contract(
            self,
            ActionEncoder,
            VECTOR,
            actions,
            expected_shape=(2, 8),
            # projection (2), 1 MLP block: LN (2) + 2 dense (4), final LN (2)
            expected_num_trainable_weights=10,
        )

    def test_layer_contract_trajectories(self):
        actions = np.random.default_rng(1).normal(size=(2, 4, 3)).astype("float32")
        check_contract(
            self,
            ActionEncoder,
            TRAJECTORY,
            actions,
            expected_shape=(2, 8),
            # projection (2), positions (1), 1 block (16), final LN (2)
            expected_num_trainable_weights=21,
        )

    def test_vector_mlp_matches_numpy_oracle(self):
        # h0 = x W0 + b0; h1 = h0 + W2 gelu(W1 LN(h0) + b1) + b2; out = LN(h1).
        rng = np.random.default_rng(2)
        encoder = ActionEncoder(**VECTOR)
        weights = [rng.normal(size=w.shape).astype("float32") for w in encoder.weights]
        for variable, value in zip(encoder.weights, weights):
            variable.assign(value)
        w0, b0, g1, be1, w1, b1, w2, b2, g2, be2 = [
            w.astype("float64") for w in weights
        ]
        x = rng.normal(size=(4, 3))
        h0 = x @ w0 + b0
        h1 = h0 + gelu(layer_norm(h0, g1, be1, 1e-6) @ w1 + b1) @ w2 + b2
        expected = layer_norm(h1, g2, be2, 1e-6)
        self.assertAllClose(
            forward(encoder, x.astype("float32")), expected, atol=1e-4, rtol=1e-4
        )

    def test_output_modes_and_pooling(self):
        actions = np.random.default_rng(3).normal(size=(2, 4, 3)).astype("float32")
        encoder = ActionEncoder(**TRAJECTORY, output_mode="both")
        out = forward(encoder, actions)
        sequence = out["sequence_output"]
        self.assertEqual(sequence.shape, (2, 4, 8))
        self.assertAllClose(out["pooled_output"], sequence.mean(1), atol=1e-5)
        # Shorter trajectories are accepted (and causal-free: a prefix is encoded
        # on its own); single vectors give one token.
        short = forward(encoder, actions[:, :2])
        self.assertEqual(short["sequence_output"].shape, (2, 2, 8))
        last = ActionEncoder(**TRAJECTORY, pooling="last", output_mode="sequence")
        self.assertEqual(tuple(last(keras.Input((3, 3))).shape), (None, 3, 8))
        vector = ActionEncoder(**VECTOR, output_mode="sequence")
        self.assertEqual(
            tuple(vector({"actions": keras.Input((3,))}).shape), (None, 1, 8)
        )

    def test_nested_encoders_and_saving(self):
        actions = np.random.default_rng(4).normal(size=(2, 4, 3)).astype("float32")
        assert_nested_round_trip(self, lambda: ActionEncoder(**TRAJECTORY), actions)

    def test_bad_inputs(self):
        vector = ActionEncoder(**VECTOR)
        for bad in (np.ones((2, 4)), np.ones((2, 4, 3)), np.ones((3,))):
            with pytest.raises(ValueError, match=r"actions.*\(batch, 3\).*Received"):
                vector(bad)
        trajectory = ActionEncoder(**TRAJECTORY)
        for bad in (np.ones((2, 3)), np.ones((2, 5, 3)), np.ones((2, 4, 2))):
            with pytest.raises(ValueError, match=r"\(batch, T, 3\).*T <= 4.*Received"):
                trajectory(bad)
        with pytest.raises(ValueError, match="key 'actions'"):
            vector({"action": np.ones((2, 3))})
        bad_args = [
            (dict(action_dim=0), "action_dim"),
            (dict(max_sequence_length=0), "max_sequence_length"),
            (dict(max_sequence_length=4, num_heads=3), "divisible by `num_heads`"),
            (dict(pooling="max"), "pooling"),
            (dict(dropout=-0.1), "dropout"),
        ]
        for kwargs, words in bad_args:
            with pytest.raises(ValueError, match=words):
                ActionEncoder(**dict(VECTOR, **kwargs))
