import os

import keras
import numpy as np
import pytest

from keras_mm.encoders import ConvImageEncoder
from keras_mm.testing import TestCase
from tests.encoders.encoder_checks import forward

# One channel and hidden_dim=32 everywhere: on JAX every new kernel shape costs
# a compilation of its random initializer (seconds, more for some shapes), so
# the tests share three. 26x20 -> conv_0 (16 filters), pool -> 13x10 -> conv_1
# (32), pool -> 6x5 -> conv_2 (32) -> 30 tokens.
TINY = dict(image_shape=(26, 20, 1), hidden_dim=32)


def conv3x3_relu(x, kernel, bias):
    """`Conv2D(f, 3, padding="same", activation="relu")` on (b, h, w, c)."""
    b, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((b, h, w, kernel.shape[-1]))
    for i in range(3):
        for j in range(3):
            out += padded[:, i : i + h, j : j + w] @ kernel[i, j]
    return np.maximum(out + bias, 0.0)


def max_pool(x):
    """`MaxPooling2D()`: 2x2 windows, stride 2, odd rows/columns dropped."""
    b, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class ConvImageEncoderTest(TestCase):
    def test_output_shapes(self):
        # The smaller side sets the stages: one (8 -> 4), two (20 -> 10 -> 5),
        # three (40 -> 20 -> 10 -> 5); the grid is then h x w tokens.
        for image_shape, tokens in (
            ((8, 12, 1), 4 * 6),
            ((26, 20, 1), 6 * 5),
            ((48, 40, 1), 6 * 5),
        ):
            encoder = ConvImageEncoder(image_shape, hidden_dim=32, output_mode="both")
            out = encoder(keras.Input(image_shape))
            self.assertEqual(tuple(out["pooled_output"].shape), (None, 32))
            self.assertEqual(tuple(out["sequence_output"].shape), (None, tokens, 32))
            self.assertEqual(encoder.num_tokens, tokens)
        encoder = ConvImageEncoder(**TINY, output_mode="sequence")
        self.assertEqual(
            tuple(encoder({"images": keras.Input((26, 20, 1))}).shape), (None, 30, 32)
        )
        images = np.random.default_rng(0).random((2, 26, 20, 1)).astype("float32")
        self.assertEqual(tuple(ConvImageEncoder(**TINY)(images).shape), (2, 32))

    def test_matches_numpy_oracle(self):
        rng = np.random.default_rng(1)
        encoder = ConvImageEncoder(**TINY, output_mode="both")
        params = {}
        stages = (("conv_0", 1, 16), ("conv_1", 16, 32), ("conv_2", 32, 32))
        for name, filters_in, filters in stages:
            kernel = rng.normal(0, 0.3, (3, 3, filters_in, filters)).astype("float32")
            bias = rng.normal(0, 0.1, (filters,)).astype("float32")
            encoder.get_layer(name).kernel.assign(kernel)
            encoder.get_layer(name).bias.assign(bias)
            params[name] = (kernel.astype("float64"), bias.astype("float64"))
        self.assertEqual(len(encoder.trainable_weights), 6)
        images = rng.random((2, 26, 20, 1)).astype("float32")

        out = forward(encoder, images)
        x = max_pool(conv3x3_relu(images.astype("float64"), *params["conv_0"]))
        x = max_pool(conv3x3_relu(x, *params["conv_1"]))
        x = conv3x3_relu(x, *params["conv_2"])
        tokens = x.reshape(2, 6 * 5, 32)
        self.assertAllClose(out["sequence_output"], tokens, atol=1e-4, rtol=1e-4)
        self.assertAllClose(out["pooled_output"], tokens.mean(1), atol=1e-4, rtol=1e-4)

    def test_config_and_keras_round_trip(self):
        encoder = ConvImageEncoder(**TINY, name="cnn")
        config = encoder.get_config()
        self.assertEqual(ConvImageEncoder.from_config(config).get_config(), config)
        serialized = keras.saving.serialize_keras_object(encoder)
        self.assertEqual(serialized["registered_name"], "keras_mm>ConvImageEncoder")
        images = np.random.default_rng(2).random((2, 26, 20, 1)).astype("float32")
        restored = self.run_model_saving_test(encoder, images)
        self.assertIsInstance(restored, ConvImageEncoder)
        self.assertEqual(restored.get_config(), config)

    def test_nested_model_loads_in_safe_mode(self):
        encoder = ConvImageEncoder(**TINY, output_mode="both")
        inputs = keras.Input((26, 20, 1), name="images")
        model = keras.Model(inputs, encoder(inputs))
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
        self.assertIsInstance(restored.get_layer(encoder.name), ConvImageEncoder)
        images = np.random.default_rng(3).random((2, 26, 20, 1)).astype("float32")
        self.assertAllClose(
            restored.predict_on_batch(images), model.predict_on_batch(images)
        )

    def test_bad_inputs(self):
        encoder = ConvImageEncoder(**TINY)
        for bad in (
            np.ones((2, 26, 20)),
            np.ones((2, 26, 8, 1)),
            np.ones((2, 26, 20, 3)),
        ):
            with pytest.raises(
                ValueError,
                match=r"ConvImageEncoder: `images`.*\(None, 26, 20, 1\).*Received: "
                r"images shape=\(2,",
            ):
                encoder(bad)
        with pytest.raises(ValueError, match=r"images.*shape=\(None, 26, 20, 3\)"):
            encoder(keras.Input((26, 20, 3)))
        with pytest.raises(
            ValueError, match="key 'images'.*Received: keys=\\['img'\\]"
        ):
            encoder({"img": np.ones((2, 26, 20, 1))})
        bad_args = [
            (dict(image_shape=(26, 20)), "image_shape"),
            (dict(image_shape=(1, 20, 1)), "at least 2"),
            (dict(hidden_dim=0), "hidden_dim"),
            (dict(output_mode="tokens"), "output_mode"),
        ]
        for kwargs, words in bad_args:
            with pytest.raises(ValueError, match=words):
                ConvImageEncoder(**dict(TINY, **kwargs))
