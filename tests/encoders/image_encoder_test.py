import keras
import numpy as np
import pytest

from keras_mm.encoders import ImageEncoder
from keras_mm.testing import TestCase
from tests.encoders.encoder_checks import (
    assert_nested_round_trip,
    check_contract,
    forward,
    layer_norm,
)

TINY = dict(
    image_shape=(8, 8, 3),
    patch_size=4,
    hidden_dim=8,
    num_layers=1,
    num_heads=2,
    intermediate_dim=16,
)


def patchify(images, p):
    """(batch, H, W, C) -> (batch, (H/p)(W/p), p*p*C), patches in row-major order."""
    b, h, w, c = images.shape
    x = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


class ImageEncoderTest(TestCase):
    def test_layer_contract(self):
        images = np.random.default_rng(0).random((2, 8, 8, 3)).astype("float32")
        check_contract(
            self,
            ImageEncoder,
            TINY,
            images,
            expected_shape=(2, 8),
            # patch kernel+bias, class token, positions, 1 block (16), final LN (2)
            expected_num_trainable_weights=22,
        )

    def test_embedding_matches_numpy_oracle(self):
        # With no blocks, sequence = LN(concat(cls, patches @ W + b) + positions).
        rng = np.random.default_rng(1)
        config = dict(TINY, num_layers=0, image_shape=(8, 12, 3))
        encoder = ImageEncoder(**config, output_mode="both")
        kernel = rng.normal(size=(4, 4, 3, 8)).astype("float32")
        bias = rng.normal(size=(8,)).astype("float32")
        cls = rng.normal(size=(1, 1, 8)).astype("float32")
        positions = rng.normal(size=(7, 8)).astype("float32")
        gamma = rng.normal(size=(8,)).astype("float32")
        beta = rng.normal(size=(8,)).astype("float32")
        encoder.get_layer("patch_embedding").kernel.assign(kernel)
        encoder.get_layer("patch_embedding").bias.assign(bias)
        encoder.get_layer("class_token").class_token.assign(cls)
        encoder.get_layer("position_embedding").position_embeddings.assign(positions)
        encoder.get_layer("final_layer_norm").gamma.assign(gamma)
        encoder.get_layer("final_layer_norm").beta.assign(beta)
        images = rng.random((2, 8, 12, 3)).astype("float32")

        out = forward(encoder, images)
        tokens = patchify(images.astype("float64"), 4) @ kernel.reshape(48, 8) + bias
        tokens = np.concatenate([np.broadcast_to(cls, (2, 1, 8)), tokens], 1)
        expected = layer_norm(tokens + positions, gamma, beta, 1e-6)
        self.assertEqual(out["sequence_output"].shape, (2, 7, 8))
        self.assertAllClose(out["sequence_output"], expected, atol=1e-4, rtol=1e-4)
        self.assertAllClose(out["pooled_output"], expected[:, 0], atol=1e-4, rtol=1e-4)

    def test_output_modes_and_pooling(self):
        images = np.random.default_rng(2).random((3, 8, 8, 3)).astype("float32")
        for use_class_token in (True, False):
            encoder = ImageEncoder(
                **TINY,
                use_class_token=use_class_token,
                pooling="mean",
                output_mode="both",
            )
            out = forward(encoder, images)
            tokens = 4 + int(use_class_token)
            self.assertEqual(out["sequence_output"].shape, (3, tokens, 8))
            self.assertEqual(encoder.num_tokens, tokens)
            # Mean over the patch tokens only, never over the class token.
            patches = out["sequence_output"][:, int(use_class_token) :]
            self.assertAllClose(out["pooled_output"], patches.mean(1), atol=1e-5)
        sequence = ImageEncoder(**TINY, output_mode="sequence")
        self.assertEqual(tuple(sequence(keras.Input((8, 8, 3))).shape), (None, 5, 8))
        dict_input = {"images": keras.Input((8, 8, 3))}
        self.assertEqual(tuple(sequence(dict_input).shape), (None, 5, 8))

    def test_nested_encoders_and_saving(self):
        images = np.random.default_rng(3).random((2, 8, 8, 3)).astype("float32")
        assert_nested_round_trip(self, lambda: ImageEncoder(**TINY), images)

    def test_bad_inputs(self):
        encoder = ImageEncoder(**TINY)
        for bad in (np.ones((2, 8, 8)), np.ones((2, 8, 4, 3)), np.ones((2, 8, 8, 1))):
            with pytest.raises(
                ValueError, match=r"images.*\(None, 8, 8, 3\).*Received"
            ):
                encoder(bad)
        with pytest.raises(ValueError, match="images"):
            encoder(keras.Input((8, 8)))
        with pytest.raises(
            ValueError, match="key 'images'.*Received: keys=\\['img'\\]"
        ):
            encoder({"img": np.ones((2, 8, 8, 3))})
        bad_args = [
            (dict(image_shape=(10, 8, 3)), "divisible by `patch_size`"),
            (dict(image_shape=(8, 8)), "image_shape"),
            (dict(hidden_dim=6, num_heads=4), "divisible by `num_heads`"),
            (dict(use_class_token=False), "use_class_token"),
            (dict(pooling="max"), "pooling"),
            (dict(output_mode="tokens"), "output_mode"),
            (dict(dropout=1.0), "dropout"),
            (dict(num_layers=-1), "num_layers"),
        ]
        for kwargs, words in bad_args:
            with pytest.raises(ValueError, match=words):
                ImageEncoder(**dict(TINY, **kwargs))
