"""Run a SavedModel's endpoints with TensorFlow alone; Keras cannot be imported.

Usage: python serve_without_keras.py SAVED_MODEL INPUTS.npz OUTPUTS.npz [...]
(any number of such triples, served in one process).

`INPUTS.npz` holds arrays named `"<call>/<input>"`, where `<call>` is an endpoint
name, optionally followed by `@label` to call it again with other inputs (object
arrays of strings or bytes for the raw-input endpoints). Each call runs twice, as
a method of the loaded object and through its signature def, and the outputs are
written as `"<call>/<output>"` and `"signature:<call>/<output>"`. A call that
raises a TensorFlow error writes its message as `"<call>/error"` instead, and
serving goes on (a bad request must not stop a server).
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


def load_text_ops(tf):
    """Register TensorFlow Text's ops (the raw-input endpoints' tokenizers).

    `import tensorflow_text` would import Keras (its Keras layers), so the op
    libraries are loaded directly, as any TensorFlow client (or a TensorFlow
    Serving build with TF Text ops) can.
    """
    import glob
    import importlib.util
    import os

    spec = importlib.util.find_spec("tensorflow_text")
    if spec is None:
        return
    root = list(spec.submodule_search_locations)[0]
    for path in sorted(glob.glob(os.path.join(root, "python", "ops", "_*.so"))):
        tf.load_op_library(path)


def serve(tf, np, saved_model, inputs_file, outputs_file):
    loaded = tf.saved_model.load(saved_model)
    inputs = {}
    with np.load(inputs_file, allow_pickle=True) as data:
        for key in data.files:
            call, name = key.split("/")
            inputs.setdefault(call, {})[name] = data[key]
    outputs = {}
    for call, feed in inputs.items():
        endpoint = call.split("@")[0]
        feed = {k: v.tolist() if v.dtype == object else v for k, v in feed.items()}
        try:
            for key, value in getattr(loaded, endpoint)(**feed).items():
                outputs[f"{call}/{key}"] = value.numpy()
        except tf.errors.OpError as error:
            outputs[f"{call}/error"] = np.asarray(error.message)
            continue
        tensors = {k: tf.constant(v) for k, v in feed.items()}
        for key, value in loaded.signatures[endpoint](**tensors).items():
            outputs[f"signature:{call}/{key}"] = value.numpy()
    np.savez(outputs_file, **outputs)


def main(*paths):
    sys.meta_path.insert(0, _BlockKeras())
    import numpy as np
    import tensorflow as tf

    load_text_ops(tf)
    for i in range(0, len(paths), 3):
        serve(tf, np, *paths[i : i + 3])
    imported = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    if imported:
        print(f"Keras modules were imported: {imported[:5]}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
