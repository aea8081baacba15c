"""The run directory: configuration, per-epoch checkpoints and RNG state.

```
RUN/run.json                 the run's configuration (dataset, model, training)
RUN/vocabulary.json          the token vocabulary (index = id)
RUN/checkpoint.json          the last good checkpoint: epoch, file, RNG state, history
RUN/checkpoints/epoch-0003.keras   model + optimizer state after epoch 3
RUN/model.keras              the trained model (no optimizer), when training ends
RUN/preprocessor/            --init runs: the checkpoint's tokenizer (keras-hub preset)
```

A checkpoint is committed by replacing `checkpoint.json` (an atomic rename)
after its `.keras` file is completely written, and older checkpoint files are
removed only after that: a run killed at any moment keeps a consistent last
good checkpoint, and loses at most the epoch it was in.
"""

import json
import os
import random
import shutil
import tempfile

import keras
import numpy as np
from keras import ops

RUN_CONFIG = "run.json"
VOCABULARY = "vocabulary.json"
CHECKPOINT_STATE = "checkpoint.json"
CHECKPOINT_DIR = "checkpoints"
MODEL = "model.keras"
METRICS = "metrics.json"
SIMILARITY_PNG = "similarity.png"
EMBEDDINGS_PNG = "embeddings.png"
SAVED_MODEL = "saved_model"
# Everything `train --overwrite` may delete (nothing else in the directory).
RUN_FILES = (
    RUN_CONFIG,
    VOCABULARY,
    CHECKPOINT_STATE,
    CHECKPOINT_DIR,
    MODEL,
    METRICS,
    SIMILARITY_PNG,
    EMBEDDINGS_PNG,
    SAVED_MODEL,
    "preprocessor",
    "tokenizer",  # the text-to-image family's stages
    "transformer",
)


class RunDir:
    """Paths and files of one run directory."""

    writable = True

    def __init__(self, path):
        self.path = os.fspath(path)

    def file(self, name):
        return os.path.join(self.path, name)

    def exists(self):
        return os.path.isfile(self.file(RUN_CONFIG))

    def clear(self):
        for name in RUN_FILES:
            path = self.file(name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.remove(path)

    def config(self):
        """The run configuration from `run.json`, checked for the keys used."""
        path = self.file(RUN_CONFIG)
        try:
            config = self.read_json(RUN_CONFIG)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: cannot be read ({error})") from None
        keys = ("family", "dataset", "epochs", "batch_size", "seed")
        missing = [k for k in keys if not isinstance(config, dict) or k not in config]
        if missing or not isinstance(config["dataset"], dict):
            missing = missing or "a dataset"
            raise ValueError(
                f"{path}: not a keras-mm run configuration (missing {missing})"
            )
        return config

    def read_json(self, name):
        with open(self.file(name), encoding="utf-8") as f:
            return json.load(f)

    def write_json(self, name, value):
        os.makedirs(self.path, exist_ok=True)
        target = self.file(name)
        tmp = f"{target}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(value, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)

    def save_model(self, model, name, include_optimizer):
        """`model.save` to `name` through a temporary file and a rename."""
        os.makedirs(os.path.dirname(self.file(name)) or self.path, exist_ok=True)
        target = self.file(name)
        head, tail = os.path.split(target)
        tmp = os.path.join(head, f"tmp-{tail}")
        model.save(tmp, include_optimizer=include_optimizer)
        os.replace(tmp, target)

    # ---------------------------------------------------------------- checkpoints
    def checkpoint_state(self):
        """The committed checkpoint state (dict), or None before the first one."""
        path = self.file(CHECKPOINT_STATE)
        if not os.path.isfile(path):
            return None
        try:
            state = self.read_json(CHECKPOINT_STATE)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: cannot be read ({error})") from None
        keys = ("epoch", "file", "rng", "history")
        if not isinstance(state, dict) or any(k not in state for k in keys):
            raise ValueError(
                f"{path}: not a keras-mm checkpoint state (expected the keys "
                f"{', '.join(keys)})"
            )
        return state

    def save_checkpoint(self, model, epoch, history):
        """Save model + optimizer after `epoch` (1-based) and commit it."""
        name = os.path.join(CHECKPOINT_DIR, f"epoch-{epoch:04d}.keras")
        self.save_model(model, name, include_optimizer=True)
        state = {
            "epoch": epoch,
            "file": name,
            "rng": capture_rng_state(),
            "history": history,
        }
        self.write_json(CHECKPOINT_STATE, state)
        for old in os.listdir(self.file(CHECKPOINT_DIR)):
            if os.path.join(CHECKPOINT_DIR, old) != name:
                os.remove(os.path.join(self.file(CHECKPOINT_DIR), old))
        return state

    def load_checkpoint(self, state, optimizer):
        """The model of a checkpoint state, compiled with `optimizer`.

        `optimizer` may be a function of the loaded model that returns one.

        The optimizer's variables (step count, moments) are read back from the
        `.keras` file, so a schedule built from the same configuration continues
        exactly. (`load_model` does not compile models that override
        `compile()`, as keras_mm's model families do, so it is done here.)
        """
        path = self.file(state["file"])
        model = keras.saving.load_model(path, compile=False)
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            optimizer = optimizer(model)  # a function of the loaded model
        model.compile(optimizer=optimizer)
        optimizer.build(model.trainable_variables)
        model.load_weights(path)
        return model


class FollowerRunDir(RunDir):
    """The run directory as processes other than 0 of a multi-process run see it.

    They read it (`--resume`) but keep nothing: process 0 alone writes the
    configuration, the checkpoints and the model. They still save the model,
    into a temporary directory that is then deleted, because saving may run
    collectives every process must join (Keras creates throw-away variables
    while saving: under JAX's multi-process `DataParallel` or TensorFlow's
    `MultiWorkerMirroredStrategy` each one is a cross-process operation).
    """

    writable = False

    def clear(self):
        pass

    def write_json(self, name, value):
        pass

    def save_model(self, model, name, include_optimizer):
        with tempfile.TemporaryDirectory(prefix="keras_mm_follower_") as tmp:
            path = os.path.join(tmp, os.path.basename(name))
            model.save(path, include_optimizer=include_optimizer)

    def save_checkpoint(self, model, epoch, history):
        name = os.path.join(CHECKPOINT_DIR, f"epoch-{epoch:04d}.keras")
        self.save_model(model, name, include_optimizer=True)


# ----------------------------------------------------------------------- RNG
def _keras_seed_generator(create=False):
    """Keras' global `SeedGenerator` (unseeded `keras.random` calls), if any."""
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator

    generator = global_state.get_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR)
    if generator is None and create:
        generator = seed_generator.global_seed_generator()
    return generator


def capture_rng_state():
    """Python, NumPy and Keras global RNG states as JSON-serialisable values.

    Layers with randomness (dropout) hold their own seed generators, whose state
    is a variable saved in the `.keras` file; this covers the global ones.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": _to_lists(random.getstate()),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "keras": None,
    }
    generator = _keras_seed_generator()
    if generator is not None:
        state["keras"] = ops.convert_to_numpy(generator.state).tolist()
    return state


def restore_rng_state(state):
    random.setstate(_to_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(
        (kind, np.asarray(keys, dtype="uint32"), pos, has_gauss, cached)
    )
    if state.get("keras") is not None:
        generator = _keras_seed_generator(create=True)
        generator.state.assign(np.asarray(state["keras"], dtype=generator.state.dtype))


def _to_lists(value):
    if isinstance(value, tuple):
        return [_to_lists(v) for v in value]
    return value


def _to_tuples(value):
    if isinstance(value, list):
        return tuple(_to_tuples(v) for v in value)
    return value
