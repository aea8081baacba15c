"""Run a SavedModel's endpoints with TensorFlow alone; Keras cannot be imported.

Usage: python serve_without_keras.py SAVED_MODEL INPUTS.npz OUTPUTS.npz

`INPUTS.npz` holds arrays named `"<endpoint>/<input>"`. Each endpoint is called
twice, as a method of the loaded object and through its signature def, and the
outputs are written as `"<endpoint>/<output>"` and `"signature:<endpoint>/<output>"`.
`keras`, `keras_mm`, `keras_hub` and `tf_keras` are blocked before TensorFlow is
imported (TensorFlow imports Keras eagerly when it is installed and skips it when
that fails), and the script exits with code 3 if any of them got imported anyway.
"""

import importlib.abc
import importlib.machinery
import sys

BLOCKED = ("keras", "keras_mm", "keras_hub", "tf_keras")


class _BlockedLoader(importlib.abc.Loader):
    def create_module(self, spec):
        raise ImportError(f"{spec.name} is blocked in this process")

    def exec_module(self, module):
        raise ImportError(f"{module.__name__} is blocked in this process")


class _BlockKeras(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, _BlockedLoader())
        return None


def main(saved_model, inputs_file, outputs_file):
    sys.meta_path.insert(0, _BlockKeras())
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(saved_model)
    inputs = {}
    with np.load(inputs_file) as data:
        for key in data.files:
            endpoint, name = key.split("/")
            inputs.setdefault(endpoint, {})[name] = data[key]
    outputs = {}
    for endpoint, feed in inputs.items():
        for key, value in getattr(loaded, endpoint)(**feed).items():
            outputs[f"{endpoint}/{key}"] = value.numpy()
        tensors = {k: tf.constant(v) for k, v in feed.items()}
        for key, value in loaded.signatures[endpoint](**tensors).items():
            outputs[f"signature:{endpoint}/{key}"] = value.numpy()
    np.savez(outputs_file, **outputs)
    imported = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    if imported:
        print(f"Keras modules were imported: {imported[:5]}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
