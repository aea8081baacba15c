"""Safe loading of `.keras` files (issue 9).

- Every model family, built tiny, saves to `.keras` and loads back with
  `keras.saving.load_model(path)` (default `safe_mode=True`) with the same
  outputs (1e-6); its stored `config.json` holds no `Lambda` layer, no
  `__lambda__` (marshalled Python bytecode) and no object from outside the
  `keras*` packages, and the archive holds nothing but config, metadata and
  weights.
- A file whose config names an unknown class fails to load with an error that
  names the class.

The models are tiny and untrained, built with the families' own test helpers.
"""

import json
import zipfile

import keras
import numpy as np
import pytest

from keras_mm.layers import ProjectionHead
from keras_mm.models import (
    CLIP,
    VLAP,
    VLMP,
    VLP,
    Distiller,
    MultimodalAutoencoder,
    VQAModel,
)
from tests.models import captioner_test, dialogue_test, distiller_test, vqa_test

ARCHIVE_FILES = {"config.json", "metadata.json", "model.weights.h5"}


def _preset_inputs(model, batch=2):
    """Random inputs of a preset model, shaped as in `presets_test.py`."""
    rng = np.random.default_rng(0)
    x = {}
    for key, spec in model.input.items():
        if key == "modality_mask":
            continue
        shape = (batch,) + tuple(d or 8 for d in spec.shape[1:])
        if key == "token_ids":
            x[key] = rng.integers(1, 20, size=shape).astype("int32")
        elif key == "padding_mask":
            x[key] = np.ones(shape, bool)
        else:
            x[key] = rng.uniform(-1, 1, size=shape).astype("float32")
    return x


def _preset(cls, name):
    model = cls.from_preset(name)
    return model, _preset_inputs(model)


def _dialogue():
    x, _ = dialogue_test.batch(seed=3)
    del x["answer_ids"]  # used by the loss only
    return dialogue_test.shared_model(), x


def _distiller():
    teacher = distiller_test._mlp(8, 5, "teacher", seed=1)
    student = distiller_test._mlp(4, 5, "student", seed=7)
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    return Distiller(teacher, student), x


def _student():
    distiller, x = _distiller()
    return distiller.student, x


# family -> () -> (a tiny untrained model, inputs). Each is built as the
# family's own tests build it (the named presets, the captioner and dialogue
# tests' shared models, ...), so that in a full test run JAX has already
# compiled most of their ops.
FAMILIES = {
    "clip": lambda: _preset(CLIP, "clip_shapes_tiny"),
    "vlp": lambda: _preset(VLP, "vlp_tiny"),
    "vlmp": lambda: _preset(VLMP, "vlmp_tiny"),
    "vlap": lambda: _preset(VLAP, "vlap_digits_tiny"),
    "autoencoder": lambda: _preset(MultimodalAutoencoder, "autoencoder_digits_tiny"),
    "captioner": lambda: (
        captioner_test.shared_model(),
        captioner_test.batch(n=3, seed=3),
    ),
    "vqa": lambda: (
        VQAModel(*vqa_test._encoders(), num_answers=5, fusion="cross_attention"),
        vqa_test._batch(),
    ),
    "dialogue": _dialogue,
    "distiller": _distiller,
    "distiller_student": _student,
}


def _outputs(model, x):
    """The model's eager outputs on `x`, as NumPy."""
    return keras.tree.map_structure(keras.ops.convert_to_numpy, model(x))


def _read_archive(path):
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        config = json.loads(archive.read("config.json"))
    return names, config


def _unsafe_entries(config, where="config"):
    """Paths in a `.keras` config that only `safe_mode=False` could load."""
    found = []
    if isinstance(config, dict):
        if config.get("class_name") in ("Lambda", "__lambda__"):
            found.append(f"{where}: class_name={config['class_name']}")
        module = config.get("module")
        if isinstance(module, str) and module.split(".")[0] not in (
            "keras",
            "keras_mm",
            "keras_hub",
        ):
            found.append(f"{where}: module={module}")
        for key, value in config.items():
            found += _unsafe_entries(value, f"{where}.{key}")
    elif isinstance(config, list):
        for i, value in enumerate(config):
            found += _unsafe_entries(value, f"{where}[{i}]")
    elif isinstance(config, str) and "__lambda__" in config:
        found.append(f"{where}: {config!r}")
    return found


def _rewrite_config(src, dst, old, new):
    """Copy a `.keras` archive, replacing `old` by `new` in its config.json."""
    with zipfile.ZipFile(src) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    text = files["config.json"].decode("utf-8")
    assert old in text
    files["config.json"] = text.replace(old, new).encode("utf-8")
    with zipfile.ZipFile(dst, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_round_trips_in_safe_mode_without_lambdas(family, tmp_path):
    keras.utils.set_random_seed(1)
    model, x = FAMILIES[family]()
    expected = _outputs(model, x)
    path = str(tmp_path / f"{family}.keras")
    model.save(path)

    names, config = _read_archive(path)
    assert names == ARCHIVE_FILES
    assert _unsafe_entries(config) == []
    registered = json.dumps(config)
    if family != "distiller_student":  # a plain functional model
        assert f'"registered_name": "keras_mm>{type(model).__name__}"' in registered

    restored = keras.saving.load_model(path)  # safe_mode=True
    assert type(restored) is type(model)
    actual = _outputs(restored, x)
    keras.tree.map_structure(
        lambda a, e: np.testing.assert_allclose(a, e, atol=1e-6, rtol=1e-6),
        actual,
        expected,
    )


def test_scan_finds_a_lambda_and_safe_mode_refuses_it(tmp_path):
    # The scan above would catch a Lambda, and load_model would refuse it.
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: 2.0 * t)(inputs))
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    unsafe = _unsafe_entries(_read_archive(path)[1])
    assert any("Lambda" in entry for entry in unsafe)
    assert any("__lambda__" in entry for entry in unsafe)
    with pytest.raises(ValueError, match="safe_mode=False"):
        keras.saving.load_model(path)


def _saved_head(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, ProjectionHead(2, name="head")(inputs))
    path = str(tmp_path / "head.keras")
    model.save(path)
    return path


def test_unknown_layer_class_names_the_class(tmp_path):
    # A file from a newer keras_mm (or a tampered one) naming a class this
    # installation does not have. Keras wraps the lookup failure of a layer of
    # a functional model in a TypeError ("... could not be deserialized
    # properly ..."); its message names the missing class.
    path = _saved_head(tmp_path)
    bad = str(tmp_path / "bad.keras")
    _rewrite_config(path, bad, "ProjectionHead", "NoSuchLayer")
    with pytest.raises(TypeError, match="Could not locate class 'NoSuchLayer'"):
        keras.saving.load_model(bad)


def test_unknown_model_class_names_the_class(tmp_path):
    model = VLMP.from_preset("vlmp_tiny")
    path = str(tmp_path / "vlmp.keras")
    model.save(path)
    bad = str(tmp_path / "bad.keras")
    _rewrite_config(path, bad, "VLMP", "NoSuchModel")
    with pytest.raises(TypeError, match="Could not locate class 'NoSuchModel'"):
        keras.saving.load_model(bad)
