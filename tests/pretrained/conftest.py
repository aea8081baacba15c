"""Shared fixtures: tiny random keras-hub presets and `transformers` checkpoints.

Nothing is downloaded. The `transformers` checkpoints and reference outputs
(`hf_checkpoints`) are a session fixture of tests/conftest.py, shared with the CLI
tests.
"""

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE_SIZE, LENGTH = 16, 8


def perturb(model, seed):
    """Move every float weight off its initial value (norms start at 1 and 0)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if "int" in str(variable.dtype):
            continue
        value = np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)
        variable.assign(value + 0.1 * rng.standard_normal(value.shape))


def tiny_towers(vision_cls, text_cls, num_layers, vocabulary_size, **text_kwargs):
    """A tiny vision and text tower of keras-hub classes, with the same sizes."""
    sizes = dict(hidden_dim=8, num_layers=num_layers, num_heads=2, intermediate_dim=16)
    vision = vision_cls(patch_size=8, image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), **sizes)
    text = text_cls(
        vocabulary_size=vocabulary_size,
        embedding_dim=8,
        max_sequence_length=LENGTH,
        **sizes,
        **text_kwargs,
    )
    return vision, text


def tiny_clip_backbone(seed=0):
    import keras_hub

    from tests.pretrained.tiny_vocabulary import tiny_vocabulary

    vocabulary, _ = tiny_vocabulary()
    vision, text = tiny_towers(
        keras_hub.models.CLIPVisionEncoder,
        keras_hub.models.CLIPTextEncoder,
        num_layers=2,
        vocabulary_size=len(vocabulary),
    )
    backbone = keras_hub.models.CLIPBackbone(vision, text, projection_dim=6)
    perturb(backbone, seed)
    positions = vision.embedding.position_ids
    positions.assign(np.arange(positions.shape[-1]).reshape(positions.shape))
    backbone.clip_head.logit_scale.assign(2.3)
    return backbone


def tiny_clip_preprocessor():
    import keras_hub

    from tests.pretrained.tiny_vocabulary import tiny_vocabulary

    vocabulary, merges = tiny_vocabulary()
    tokenizer = keras_hub.models.CLIPTokenizer(vocabulary=vocabulary, merges=merges)
    return keras_hub.models.CLIPPreprocessor(tokenizer, sequence_length=LENGTH)


def tiny_siglip_backbone(seed=0):
    import keras_hub

    vision, text = tiny_towers(
        keras_hub.models.SigLIPVisionEncoder,
        keras_hub.models.SigLIPTextEncoder,
        num_layers=1,
        vocabulary_size=40,
        projection_dim=8,
    )
    backbone = keras_hub.models.SigLIPBackbone(vision, text)
    perturb(backbone, seed)
    backbone.siglip_head.logit_scale.assign(2.5)
    backbone.siglip_head.logit_bias.assign(-3.0)
    return backbone


@pytest.fixture(scope="session")
def clip_preset(tmp_path_factory):
    """A local keras-hub CLIP preset directory with a preprocessor."""
    directory = str(tmp_path_factory.mktemp("clip_preset"))
    tiny_clip_backbone().save_to_preset(directory)
    tiny_clip_preprocessor().save_to_preset(directory)
    return directory


def random_text(rng, batch, vocabulary_size):
    """Right-padded token ids that end with the largest id (CLIP's end token)."""
    eos = vocabulary_size - 1
    token_ids = np.zeros((batch, LENGTH), "int32")
    lengths = rng.integers(3, LENGTH + 1, size=batch)
    for i, length in enumerate(lengths):
        token_ids[i, 0] = eos - 1
        token_ids[i, 1 : length - 1] = rng.integers(0, eos - 1, size=length - 2)
        token_ids[i, length - 1] = eos
    padding_mask = np.arange(LENGTH)[None, :] < lengths[:, None]
    return {"token_ids": token_ids, "padding_mask": padding_mask}
