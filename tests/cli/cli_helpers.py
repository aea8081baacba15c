"""Shared settings and helpers of the `keras-mm` CLI tests."""

import json
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np

from keras_mm.cli import main

# Tiny shapes runs: 4 batches of 32 per epoch, narrow encoders.
TINY = [
    "--dataset",
    "shapes",
    "--train-samples",
    "128",
    "--test-samples",
    "48",
    "--batch-size",
    "32",
    "--width",
    "16",
    "--embed-dim",
    "16",
    "--verbose",
    "0",
]
OTHER_BACKEND = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}
# Extra environment of the `keras-mm` subprocesses (see conftest.py).
SUBPROCESS_ENV = {}


def console_script():
    """The installed `keras-mm` script of this interpreter's environment."""
    path = os.path.join(os.path.dirname(sys.executable), "keras-mm")
    return path if os.path.isfile(path) else shutil.which("keras-mm")


def console_env(env=None):
    """The environment of a `keras-mm` subprocess; a None value unsets a name."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **SUBPROCESS_ENV, **(env or {})}
    env.setdefault("KERAS_BACKEND", keras.backend.backend())
    return {k: v for k, v in env.items() if v is not None}


def run_console(args, env=None, **kwargs):
    return subprocess.run(
        [console_script(), *args],
        capture_output=True,
        text=True,
        env=console_env(env),
        **kwargs,
    )


def native_log_lines(text):
    """TensorFlow's C++ log lines in `text` (absl's format, or its warning)."""
    return [
        line
        for line in text.splitlines()
        if "absl::InitializeLog" in line
        or re.match(r"^[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\] ", line)
    ]


def train(output, *args):
    return main(["train", *TINY, "--output", str(output), *args])


def weights_of(path):
    """The weights of a `.keras` file (safe-mode load), as NumPy arrays."""
    model = keras.saving.load_model(str(path), compile=False)
    return [np.asarray(w) for w in model.get_weights()]


def assert_same_weights(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def checkpoint_state(run):
    with open(os.path.join(str(run), "checkpoint.json"), encoding="utf-8") as f:
        return json.load(f)


def stderr_lines(captured):
    return [line for line in captured.err.splitlines() if line.strip()]
