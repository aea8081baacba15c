import os

import keras
import numpy as np
import pytest

from keras_mm.activations import quick_gelu
from keras_mm.encoders import ImageEncoder, TextEncoder
from keras_mm.testing import TestCase
from tests.encoders.image_encoder_test import TINY as IMAGE
from tests.encoders.text_encoder_test import TINY as TEXT


class QuickGeluTest(TestCase):
    def test_matches_numpy_oracle(self):
        x = np.linspace(-6, 6, 49).astype("float32")
        expected = x / (1 + np.exp(-1.702 * x))  # x * sigmoid(1.702 x)
        self.assertAllClose(quick_gelu(x), expected, atol=1e-6, rtol=1e-6)
        # Within 0.03 of the exact GELU x * Phi(x) everywhere.
        from math import erf

        exact = np.array([v * 0.5 * (1 + erf(v / np.sqrt(2))) for v in x])
        self.assertLess(
            np.abs(keras.ops.convert_to_numpy(quick_gelu(x)) - exact).max(), 0.03
        )

    def test_keeps_the_input_dtype(self):
        for dtype in ("float16", "bfloat16", "float32"):
            y = quick_gelu(keras.ops.ones((2,), dtype=dtype))
            self.assertEqual(keras.backend.standardize_dtype(y.dtype), dtype)

    def test_encoders_accept_it_by_name_and_save_it(self):
        encoder = TextEncoder(**TEXT, activation="quick_gelu")
        self.assertEqual(encoder.get_config()["activation"], "quick_gelu")
        # The function itself is stored by its name as well.
        image = ImageEncoder(**IMAGE, activation=quick_gelu)
        self.assertEqual(image.get_config()["activation"], "quick_gelu")
        ids = np.array([[1, 2, 3, 0, 0, 0]], "int32")
        inputs = keras.Input((6,), dtype="int32")
        model = keras.Model(inputs, encoder({"token_ids": inputs}))
        path = os.path.join(self.get_temp_dir(), "quick_gelu.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
        self.assertAllClose(
            restored.predict(ids, verbose=0), model.predict(ids, verbose=0)
        )

    def test_unknown_name_is_a_clear_error(self):
        for bad in ("quick_gelux", 3):
            with pytest.raises(ValueError, match=f"`activation` must be.*{bad}"):
                TextEncoder(vocabulary_size=10, activation=bad)
