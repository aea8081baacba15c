import json
import os
import shutil
import struct

import numpy as np
import pytest

from keras_mm.models import CLIP
from keras_mm.pretrained import ConvertedHubEncoder, clip_from_huggingface
from keras_mm.pretrained.hf_checkpoint import _read_raw_safetensors, read_safetensors
from keras_mm.testing import TestCase


class ClipFromHuggingFaceTest(TestCase):
    @pytest.fixture(autouse=True)
    def _checkpoints(self, hf_checkpoints):
        self.root = hf_checkpoints
        self.reference = dict(np.load(os.path.join(hf_checkpoints, "reference.npz")))

    def check_parity(self, model, token_ids, padding_mask, prefix):
        r = self.reference
        x = {
            "images": r["images"],
            "token_ids": token_ids.astype("int32"),
            "padding_mask": padding_mask,
        }
        outputs = model.predict(x, verbose=0)
        self.assertAllClose(
            outputs["image_embeddings"],
            r[f"{prefix}_image_embeddings"],
            atol=1e-5,
            rtol=1e-5,
        )
        self.assertAllClose(
            outputs["text_embeddings"],
            r[f"{prefix}_text_embeddings"],
            atol=1e-5,
            rtol=1e-5,
        )
        self.assertAllClose(
            model.similarity(outputs["image_embeddings"], outputs["text_embeddings"]),
            r[f"{prefix}_logits"],
            atol=1e-5,
            rtol=1e-5,
        )

    def test_clip_matches_transformers(self):
        model, preprocessor = clip_from_huggingface(os.path.join(self.root, "clip"))
        self.assertIsInstance(model, CLIP)
        self.assertIsInstance(model.text_encoder, ConvertedHubEncoder)
        self.assertEqual(model.text_encoder.layer_norm_epsilon, 1e-5)
        r = self.reference
        self.check_parity(
            model, r["clip_token_ids"], r["clip_padding_mask"], prefix="clip"
        )
        # Same BPE token ids as transformers' CLIPTokenizer (padded with the end
        # token, as OpenAI's tokenizer pads).
        prompts = ["a photo of a red circle", "Blue  SQUARE", "a circle of squares"]
        tokens = preprocessor({"prompts": prompts, "images": None})
        self.assertAllClose(tokens["token_ids"], r["prompt_token_ids"])

    def test_siglip_matches_transformers(self):
        model, preprocessor = clip_from_huggingface(os.path.join(self.root, "siglip"))
        self.assertEqual(model.loss_name, "siglip")
        self.assertIsNone(preprocessor)
        r = self.reference
        ids = r["siglip_token_ids"]
        self.check_parity(model, ids, np.ones(ids.shape, bool), prefix="siglip")

    def copy(self, name):
        target = os.path.join(self.get_temp_dir(), name)
        shutil.copytree(os.path.join(self.root, name), target)
        return target

    def test_rejects_checkpoints_it_cannot_convert(self):
        from safetensors.numpy import save_file

        # A tensor that the converted model would silently drop.
        extra = self.copy("clip")
        path = os.path.join(extra, "model.safetensors")
        tensors = read_safetensors(path)
        tensors["text_model.extra.weight"] = np.zeros((2,), "float32")
        save_file(tensors, path)
        with self.assertRaisesRegex(ValueError, "does not use"):
            clip_from_huggingface(extra)

        # An end-of-text id that argmax pooling would not find.
        eos = self.copy("clip")
        with open(os.path.join(eos, "config.json")) as f:
            config = json.load(f)
        config["text_config"]["eos_token_id"] = 5
        with open(os.path.join(eos, "config.json"), "w") as f:
            json.dump(config, f)
        with self.assertRaisesRegex(ValueError, "eos_token_id"):
            clip_from_huggingface(eos)

        config["model_type"] = "siglip2"
        with open(os.path.join(eos, "config.json"), "w") as f:
            json.dump(config, f)
        with self.assertRaisesRegex(ValueError, "SigLIP 2"):
            clip_from_huggingface(eos)

        no_weights = self.copy("clip")
        os.remove(os.path.join(no_weights, "model.safetensors"))
        with self.assertRaisesRegex(ValueError, "safetensors"):
            clip_from_huggingface(no_weights)


def write_bfloat16_safetensors(path, tensors):
    """A safetensors file of bfloat16 tensors, written without torch."""
    header, blobs, offset = {}, [], 0
    for name, value in tensors.items():
        bits = (np.asarray(value, "<f4").view("<u4") >> 16).astype("<u2").tobytes()
        header[name] = {
            "dtype": "BF16",
            "shape": list(value.shape),
            "data_offsets": [offset, offset + len(bits)],
        }
        blobs.append(bits)
        offset += len(bits)
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


class SafetensorsReaderTest(TestCase):
    def test_bfloat16_is_read_with_numpy(self):
        # Values with at most 8 significant bits are exact in bfloat16.
        values = {
            "a": np.array([[1.0, -2.5], [0.15625, 384.0]], "float32"),
            "b": np.array([3.0, -0.0078125, 1e-3], "float32"),
        }
        path = os.path.join(self.get_temp_dir(), "model.safetensors")
        write_bfloat16_safetensors(path, values)
        # Through safetensors.numpy (bfloat16 known to NumPy via ml_dtypes, or
        # not) and through the fallback reader.
        for tensors in (read_safetensors(path), _read_raw_safetensors(path)):
            self.assertEqual(tensors["a"].dtype, np.float32)
            self.assertAllClose(tensors["a"], values["a"], atol=0, rtol=0)
            # 1e-3 is not exact: truncated to bfloat16's 8 significant bits.
            self.assertAllClose(tensors["b"], values["b"], atol=0, rtol=2**-7)
