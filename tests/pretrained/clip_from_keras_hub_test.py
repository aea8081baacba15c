import json
import os

import keras
import numpy as np
import pytest

from keras_mm.models import CLIP
from keras_mm.pretrained import clip_from_keras_hub
from keras_mm.testing import TestCase
from tests.pretrained.conftest import (
    IMAGE_SIZE,
    LENGTH,
    random_text,
    tiny_siglip_backbone,
)

PROMPTS = ["a photo of a red circle", "blue square", "a circle"]


def unit(x):
    x = keras.ops.convert_to_numpy(x)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class ClipFromKerasHubTest(TestCase):
    @pytest.fixture(autouse=True)
    def _preset(self, clip_preset):
        self.clip_preset = clip_preset

    def inputs(self, vocabulary_size, seed=0):
        rng = np.random.default_rng(seed)
        images = rng.uniform(-1, 1, (3, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("f4")
        return {"images": images, **random_text(rng, 3, vocabulary_size)}

    def assert_matches_backbone(self, model, reference, x, check_images=True):
        """The logits and unit embeddings equal those of the keras-hub backbone."""
        outputs = model(x)
        expected = reference({"images": x["images"], "token_ids": x["token_ids"]})
        self.assertAllClose(
            model.similarity(outputs["image_embeddings"], outputs["text_embeddings"]),
            expected["vision_logits"],
            atol=1e-5,
            rtol=1e-5,
        )
        if check_images:
            self.assertAllClose(
                outputs["image_embeddings"],
                unit(reference.get_vision_embeddings(x["images"])),
                atol=1e-5,
                rtol=1e-5,
            )
        self.assertAllClose(
            outputs["text_embeddings"],
            unit(reference.get_text_embeddings(x["token_ids"])),
            atol=1e-5,
            rtol=1e-5,
        )

    def test_clip_preset_matches_keras_hub(self):
        import keras_hub

        model, preprocessor = clip_from_keras_hub(self.clip_preset)
        reference = keras_hub.models.CLIPBackbone.from_preset(self.clip_preset)
        self.assertIsInstance(model, CLIP)
        self.assertEqual(model.loss_name, "clip")
        x = self.inputs(reference.text_encoder.vocabulary_size)
        self.assert_matches_backbone(model, reference, x)
        # The temperature is the preset's, not keras_mm's default 1/0.07.
        self.assertAllClose(model.logits_head.log_scale, 2.3, atol=1e-7)

        # The preset's preprocessor comes back and feeds the model directly.
        self.assertIsInstance(preprocessor, keras_hub.models.CLIPPreprocessor)
        saved = keras_hub.models.CLIPPreprocessor.from_preset(self.clip_preset)
        text = preprocessor({"prompts": PROMPTS, "images": None})
        self.assertAllClose(
            text["token_ids"], saved({"prompts": PROMPTS, "images": None})["token_ids"]
        )
        tokens = {k: text[k] for k in ("token_ids", "padding_mask")}
        embeddings = model.encode_text(tokens)
        self.assertAllClose(
            embeddings,
            unit(reference.get_text_embeddings(tokens["token_ids"])),
            atol=1e-5,
            rtol=1e-5,
        )

    def test_siglip_preset_matches_keras_hub(self):
        import keras_hub

        directory = self.get_temp_dir()
        tiny_siglip_backbone().save_to_preset(directory)
        model, preprocessor = clip_from_keras_hub(directory)
        reference = keras_hub.models.SigLIPBackbone.from_preset(directory)
        self.assertEqual(model.loss_name, "siglip")
        self.assertIsNone(preprocessor)  # The preset has no tokenizer.
        rng = np.random.default_rng(1)
        x = {
            "images": rng.uniform(-1, 1, (3, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("f4"),
            "token_ids": rng.integers(0, 40, (3, LENGTH)).astype("int32"),
        }
        x["padding_mask"] = np.ones((3, LENGTH), bool)
        self.assert_matches_backbone(model, reference, x, check_images=False)

    def test_saving_round_trip(self):
        model, _ = clip_from_keras_hub(self.clip_preset)
        x = self.inputs(model.text_encoder.backbone.vocabulary_size, seed=2)
        restored = self.run_model_saving_test(model, x)
        self.assertIsInstance(restored, CLIP)

    def test_load_weights_false_gives_the_architecture(self):
        model, _ = clip_from_keras_hub(self.clip_preset, load_weights=False)
        trained, _ = clip_from_keras_hub(self.clip_preset)
        x = self.inputs(model.text_encoder.backbone.vocabulary_size)
        self.assertEqual(model.embed_dim, 6)
        a = keras.ops.convert_to_numpy(model(x)["image_embeddings"])
        b = keras.ops.convert_to_numpy(trained(x)["image_embeddings"])
        self.assertGreater(float(np.abs(a - b).max()), 1e-3)

    def test_rejects_what_is_not_a_clip_preset(self):
        import keras_hub

        vit = keras_hub.models.ViTBackbone(
            image_shape=(8, 8, 3),
            patch_size=4,
            num_layers=1,
            num_heads=2,
            hidden_dim=8,
            mlp_dim=16,
        )
        directory = self.get_temp_dir()
        vit.save_to_preset(directory)
        with self.assertRaisesRegex(ValueError, "not a CLIP or SigLIP preset"):
            clip_from_keras_hub(directory)

        transformers_dir = self.get_temp_dir()
        with open(os.path.join(transformers_dir, "config.json"), "w") as f:
            json.dump({"model_type": "clip"}, f)
        with self.assertRaisesRegex(ValueError, "clip_from_huggingface"):
            clip_from_keras_hub(transformers_dir)

        missing = os.path.join(self.get_temp_dir(), "nowhere")
        with self.assertRaisesRegex(ValueError, "not a directory"):
            clip_from_keras_hub(missing)
