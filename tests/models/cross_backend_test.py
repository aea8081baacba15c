"""A `.keras` file saved under this backend loads under another with equal outputs.

Every model family is saved here and loaded in one subprocess under
`LOADER[backend]`; over the three CI runs every backend saves and loads once.
"""

import os

import keras
import numpy as np
import pytest

from keras_mm.models import CLIP, VLAP, VLMP, VLP, MultimodalAutoencoder
from keras_mm.testing.test_case import TestCase
from tests.models.model_test_utils import (
    LOADER,
    audio_encoder,
    image_encoder,
    run_in_backend,
    subset,
    synthetic_task,
    text_encoder,
)

TEXT = ("images", "token_ids", "padding_mask")


def _models():
    return {
        "clip": (CLIP(image_encoder(), text_encoder(), embed_dim=16), TEXT),
        "vlp": (
            VLP(
                image_encoder(output_mode="sequence"),
                text_encoder(output_mode="sequence"),
                embed_dim=16,
                num_fusion_layers=1,
                num_heads=2,
                seed=0,
            ),
            TEXT,
        ),
        "vlap": (
            VLAP(
                image_encoder(),
                text_encoder(),
                audio_encoder(),
                embed_dim=16,
                fusion="gated",
            ),
            TEXT + ("audio",),
        ),
        "vlmp": (
            VLMP(image_encoder(), text_encoder(), action_dim=3, embed_dim=16),
            TEXT,
        ),
        "autoencoder": (
            MultimodalAutoencoder(
                {"images": image_encoder(), "audio": audio_encoder()},
                code_dim=8,
                fusion="attention",
                seed=0,
            ),
            ("images", "audio"),
        ),
    }


class CrossBackendTest(TestCase):
    @pytest.mark.large
    def test_keras_file_loads_under_another_backend_with_equal_outputs(self):
        other = LOADER[keras.backend.backend()]
        tmp = self.get_temp_dir()
        x, _ = synthetic_task(8, seed=5)
        tasks, expected = [], {}
        for name, (model, keys) in _models().items():
            inputs = subset(x, keys)
            model_path = os.path.join(tmp, f"{name}.keras")
            inputs_path = os.path.join(tmp, f"{name}_inputs.npz")
            model.save(model_path)
            np.savez(inputs_path, **inputs)
            expected[name] = model.predict(inputs, verbose=0)
            tasks.append(
                {
                    "kind": "outputs",
                    "model": model_path,
                    "inputs": inputs_path,
                    "output": os.path.join(tmp, f"{name}_outputs.npz"),
                }
            )
        results = run_in_backend(other, tasks, tmp)
        self.assertEqual(results["backend"], other)
        for task, name in zip(tasks, expected):
            with np.load(task["output"]) as loaded:
                actual = {k: loaded[k] for k in loaded.files}
            self.assertEqual(sorted(actual), sorted(expected[name]), name)
            self.assertAllClose(
                actual,
                expected[name],
                atol=1e-5,
                rtol=1e-5,
                msg=f"{name} saved under {keras.backend.backend()}, "
                f"loaded under {other}",
            )
