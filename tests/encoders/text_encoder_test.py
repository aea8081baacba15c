import keras
import numpy as np
import pytest

from keras_mm.encoders import TextEncoder
from keras_mm.testing import TestCase
from tests.encoders.encoder_checks import (
    assert_nested_round_trip,
    check_contract,
    forward,
    layer_norm,
)

TINY = dict(
    vocabulary_size=20,
    max_sequence_length=6,
    hidden_dim=8,
    num_layers=1,
    num_heads=2,
    intermediate_dim=16,
)
# Right-padded with the pad id 0; row lengths 3, 5 and 1.
IDS = np.array([[3, 4, 5, 0, 0, 0], [7, 8, 9, 10, 11, 0], [12, 0, 0, 0, 0, 0]], "int32")
LENGTHS = (3, 5, 1)


class TextEncoderTest(TestCase):
    def test_layer_contract(self):
        # No padding_mask: it is derived from the ids, also inside `fit` (the
        # JAX trainer calls `call` directly, not `__call__`).
        check_contract(
            self,
            TextEncoder,
            TINY,
            {"token_ids": IDS},
            expected_shape=(3, 8),
            # token + position embeddings, 1 block (16), final LN (2)
            expected_num_trainable_weights=20,
        )

    def test_padding_does_not_change_outputs(self):
        # "mean" and "first" see padding only through attention; "last" must
        # also find the last real token; causal attention adds its own mask.
        mask = (IDS != 0).astype("int32")
        # Whatever sits in the padded positions must not leak into real ones.
        garbage = np.where(
            mask > 0, IDS, np.arange(IDS.size).reshape(IDS.shape) % 19 + 1
        )
        for pooling, causal in (("mean", False), ("first", False), ("last", True)):
            msg = f"pooling={pooling}, causal={causal}"
            encoder = TextEncoder(
                **TINY, pooling=pooling, causal=causal, output_mode="both"
            )
            padded = forward(encoder, {"token_ids": IDS, "padding_mask": mask})
            noisy = forward(encoder, {"token_ids": garbage, "padding_mask": mask})
            self.assertAllClose(
                noisy["pooled_output"], padded["pooled_output"], msg=msg
            )
            self.assertAllClose(
                noisy["sequence_output"] * mask[..., None],
                padded["sequence_output"] * mask[..., None],
                msg=msg,
            )
            # The same text without any padding (same positions: right padding).
            row, length = 1, LENGTHS[1]
            alone = forward(
                encoder,
                {
                    "token_ids": IDS[row : row + 1, :length],
                    "padding_mask": np.ones((1, length), "int32"),
                },
            )
            self.assertAllClose(
                padded["pooled_output"][row], alone["pooled_output"][0], atol=1e-5
            )
            self.assertAllClose(
                padded["sequence_output"][row, :length],
                alone["sequence_output"][0],
                atol=1e-5,
                msg=msg,
            )
            # The check has teeth: treating the padding as text changes the
            # pooled output of the padded rows.
            ones = np.ones_like(mask)
            unmasked = forward(encoder, {"token_ids": IDS, "padding_mask": ones})
            diff = np.abs(unmasked["pooled_output"] - padded["pooled_output"])
            self.assertGreater(diff.max(), 1e-3, msg)
        # Without a padding_mask, it is derived as token_ids != 0.
        derived = forward(encoder, {"token_ids": IDS})
        self.assertAllClose(derived, padded, atol=1e-6)

    def test_embedding_and_pooling_match_numpy_oracle(self):
        # With no blocks, sequence = LN(E[ids] + P[:T]); pooled = masked mean,
        # or last real token of it.
        rng = np.random.default_rng(0)
        embeddings = rng.normal(size=(20, 8)).astype("float32")
        positions = rng.normal(size=(6, 8)).astype("float32")
        gamma = rng.normal(size=(8,)).astype("float32")
        beta = rng.normal(size=(8,)).astype("float32")
        sequence = layer_norm(embeddings[IDS] + positions, gamma, beta, 1e-6)
        mask = (IDS != 0)[..., None]
        expected = {
            "mean": (sequence * mask).sum(1) / mask.sum(1),
            "last": sequence[np.arange(3), np.array(LENGTHS) - 1],
        }
        for pooling in ("mean", "last"):
            pooled = expected[pooling]
            encoder = TextEncoder(**dict(TINY, num_layers=0), pooling=pooling)
            embedding = encoder.get_layer("embedding")
            embedding.token_embedding.embeddings.assign(embeddings)
            embedding.position_embedding.position_embeddings.assign(positions)
            encoder.get_layer("final_layer_norm").gamma.assign(gamma)
            encoder.get_layer("final_layer_norm").beta.assign(beta)
            self.assertAllClose(forward(encoder, IDS), pooled, atol=1e-5, rtol=1e-5)

    def test_nested_encoders_and_saving(self):
        # The padding mask is derived from the token ids inside the outer model.
        model, _ = assert_nested_round_trip(
            self, lambda: TextEncoder(**TINY), {"token_ids": IDS}
        )
        self.assertEqual(
            tuple(model.predict({"token_ids": IDS}, verbose=0).shape), (3, 16)
        )

    def test_bad_inputs(self):
        encoder = TextEncoder(**TINY)
        with pytest.raises(ValueError, match=r"token_ids.*<= 6.*shape=\(3, 6, 1\)"):
            encoder(IDS[..., None])
        with pytest.raises(ValueError, match=r"token_ids.*<= 6.*shape=\(1, 7\)"):
            encoder(np.ones((1, 7), "int32"))
        with pytest.raises(ValueError, match="key 'token_ids'.*keys=\\['ids'\\]"):
            encoder({"ids": IDS})
        with pytest.raises(ValueError, match=r"padding_mask.*\(3, 6\).*\(3, 5\)"):
            encoder({"token_ids": IDS, "padding_mask": np.ones((3, 5))})
        with pytest.raises(ValueError, match="token_ids"):
            encoder({"token_ids": keras.Input((6, 2), dtype="int32")})
        bad_args = [
            (dict(vocabulary_size=0), "vocabulary_size"),
            (dict(hidden_dim=6, num_heads=4), "divisible by `num_heads`"),
            (dict(pooling="cls"), "pooling"),
            (dict(output_mode="pooled_output"), "output_mode"),
            (dict(max_sequence_length=None), "max_sequence_length"),
            (dict(name="a/b"), "name"),
        ]
        for kwargs, words in bad_args:
            with pytest.raises(ValueError, match=words):
                TextEncoder(**dict(TINY, **kwargs))
