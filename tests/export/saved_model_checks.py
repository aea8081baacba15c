"""Helpers that check an exported SavedModel outside of Keras."""

import os
import subprocess
import sys

import numpy as np

SERVE_SCRIPT = os.path.join(os.path.dirname(__file__), "serve_without_keras.py")
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def serve_without_keras(saved_model, feeds, tmp_dir):
    """Outputs of `{endpoint: {input: array}}` from a process without Keras.

    Returns `{endpoint: {output: array}}` from the loaded object's methods, and
    checks that the signature defs return the same arrays.
    """
    inputs = os.path.join(tmp_dir, "serve_inputs.npz")
    outputs = os.path.join(tmp_dir, "serve_outputs.npz")
    np.savez(
        inputs,
        **{f"{e}/{k}": v for e, feed in feeds.items() for k, v in feed.items()},
    )
    result = subprocess.run(
        [sys.executable, "-I", SERVE_SCRIPT, saved_model, inputs, outputs],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = {}
    with np.load(outputs) as data:
        for key in data.files:
            if key.startswith("signature:"):
                continue
            endpoint, name = key.split("/")
            out.setdefault(endpoint, {})[name] = data[key]
            np.testing.assert_array_equal(data[f"signature:{key}"], data[key])
    return out


def literal(array):
    """A Python literal of `array` for `saved_model_cli --input_exprs`."""
    return repr(np.asarray(array).tolist()).replace(" ", "")


def saved_model_cli_run(saved_model, signature, input_exprs, input_files, tmp_dir):
    """Run `saved_model_cli run`; return `{output_key: array}` from its --outdir.

    `input_exprs`: `{input: array}` given as Python literals (`--input_exprs`);
    `input_files`: `{input: array}` given as `.npy` files (`--inputs`).
    """
    assert os.path.isfile(SAVED_MODEL_CLI), f"{SAVED_MODEL_CLI} is missing"
    outdir = os.path.join(tmp_dir, f"cli_{signature}")
    command = [
        SAVED_MODEL_CLI,
        "run",
        "--dir",
        saved_model,
        "--tag_set",
        "serve",
        "--signature_def",
        signature,
        "--outdir",
        outdir,
        "--overwrite",
    ]
    if input_exprs:
        exprs = ";".join(f"{k}={literal(v)}" for k, v in input_exprs.items())
        command += ["--input_exprs", exprs]
    if input_files:
        specs = []
        for key, value in input_files.items():
            path = os.path.join(tmp_dir, f"{signature}_{key}.npy")
            np.save(path, value)
            specs.append(f"{key}={path}")
        command += ["--inputs", ";".join(specs)]
    result = subprocess.run(command, capture_output=True, text=True, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    return {
        name[: -len(".npy")]: np.load(os.path.join(outdir, name))
        for name in os.listdir(outdir)
        if name.endswith(".npy")
    }
