import os

import keras
import numpy as np
import pytest

from keras_mm.models import CLIP
from keras_mm.pretrained import (
    ConvertedHubEncoder,
    clip_from_huggingface,
    learning_rate_multipliers,
)
from keras_mm.testing import TestCase
from tests.pretrained.conftest import IMAGE_SIZE, random_text


class FineTuneConvertedCLIPTest(TestCase):
    @pytest.fixture(autouse=True)
    def _checkpoints(self, hf_checkpoints):
        self.checkpoint = os.path.join(hf_checkpoints, "clip")

    def test_fit_with_locked_image_tower_then_save_and_load(self):
        model, _ = clip_from_huggingface(self.checkpoint)
        rng = np.random.default_rng(0)
        x = {
            "images": rng.uniform(-1, 1, (16, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("f4"),
            **random_text(rng, 16, model.text_encoder.backbone.vocabulary_size),
        }
        # LiT: lock the pretrained image tower; the text tower learns at a tenth
        # of the heads' learning rate.
        model.image_encoder.trainable = False
        frozen = [v.numpy().copy() for v in model.image_encoder.weights]
        text_before = [v.numpy().copy() for v in model.text_encoder.weights]
        model.compile(
            optimizer=learning_rate_multipliers(
                model, {"text_encoder": 0.1}, keras.optimizers.Adam(1e-2)
            )
        )
        history = model.fit(x, batch_size=8, epochs=3, shuffle=False, verbose=0)
        losses = history.history["loss"]
        self.assertTrue(np.all(np.isfinite(losses)), losses)
        self.assertLess(losses[-1], losses[0] - 0.1, losses)
        for before, variable in zip(frozen, model.image_encoder.weights):
            self.assertAllClose(variable, before, atol=0, rtol=0)
        changed = [
            float(np.abs(v.numpy() - b).max())
            for b, v in zip(text_before, model.text_encoder.weights)
        ]
        self.assertGreater(max(changed), 1e-4)

        # The fine-tuned model round-trips through `.keras`, Hugging Face's
        # layer-norm epsilon included.
        model.image_encoder.trainable = True
        restored = self.run_model_saving_test(model, x)
        self.assertIsInstance(restored, CLIP)
        self.assertIsInstance(restored.text_encoder, ConvertedHubEncoder)
        self.assertEqual(restored.text_encoder.layer_norm_epsilon, 1e-5)
