"""Every named tiny configuration builds, runs and round-trips its config."""

import keras
import numpy as np
import pytest

from keras_mm.models import CLIP, VLAP, VLMP, VLP, MultimodalAutoencoder


def _inputs(model, batch=2):
    rng = np.random.default_rng(0)
    x = {}
    for key, spec in model.input.items():
        shape = (batch,) + tuple(d or 8 for d in spec.shape[1:])
        if key == "token_ids":
            x[key] = rng.integers(1, 20, size=shape).astype("int32")
        elif key == "padding_mask":
            x[key] = np.ones(shape, bool)
        elif key == "modality_mask":
            continue
        else:
            x[key] = rng.uniform(-1, 1, size=shape).astype("float32")
    return x


CASES = [
    (cls, name)
    for cls in (CLIP, VLP, VLAP, VLMP, MultimodalAutoencoder)
    for name in sorted(cls.presets)
]


@pytest.mark.large
@pytest.mark.parametrize("cls,name", CASES, ids=[n for _, n in CASES])
def test_preset_builds_runs_and_round_trips_config(cls, name):
    assert cls.presets[name]["description"]
    model = cls.from_preset(name)
    out = model(_inputs(model))
    for value in keras.tree.flatten(out):
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(value)))
    config = model.get_config()
    assert cls.from_config(config).get_config() == config


def test_unknown_preset_and_encoder_overrides():
    with pytest.raises(ValueError, match="Available presets"):
        CLIP.from_preset("clip_huge")
    model = CLIP.from_preset(
        "clip_shapes_tiny", text_encoder={"vocabulary_size": 40}, embed_dim=8
    )
    assert model.text_encoder.vocabulary_size == 40
    assert model.embed_dim == 8
    # The preset table itself is not modified by the overrides.
    config = CLIP.presets["clip_shapes_tiny"]["text_encoder"]["config"]
    assert config["vocabulary_size"] == 64
