"""Every public name resolves, is exported once, and is registered for saving."""

import importlib
import inspect

import keras

import keras_mm
from keras_mm.api_export import PUBLIC_API, is_serializable

SUBPACKAGES = [
    "activations",
    "data",
    "encoders",
    "layers",
    "losses",
    "metrics",
    "models",
    "pretrained",
]


def _resolve(path):
    module_path, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module_path), name)


def test_version():
    assert isinstance(keras_mm.__version__, str)
    assert keras_mm.__version__.count(".") >= 2


def test_every_public_path_resolves_and_is_registered():
    assert PUBLIC_API, "no public API was recorded"
    for path, symbol in PUBLIC_API.items():
        assert _resolve(path) is symbol, path
        if not is_serializable(symbol):  # e.g. a PyDataset: nothing to save
            continue
        name = symbol.__name__
        registered = keras.saving.get_registered_object(f"keras_mm>{name}")
        assert registered is symbol, f"{path} is not registered as keras_mm>{name}"


def test_every_exported_name_is_public_api():
    public = set(PUBLIC_API.values())
    for sub in SUBPACKAGES:
        module = importlib.import_module(f"keras_mm.{sub}")
        for name in getattr(module, "__all__", []):
            symbol = getattr(module, name)
            if inspect.isclass(symbol) or inspect.isfunction(symbol):
                assert symbol in public, f"keras_mm.{sub}.{name} is not exported"
