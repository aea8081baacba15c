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
    return serve_many_without_keras([(saved_model, feeds)], tmp_dir)[0]


def serve_many_without_keras(jobs, tmp_dir):
    """`serve_without_keras` of several `(saved_model, feeds)` in one process.

    A feed key may be `"endpoint@label"` (the same endpoint, other inputs); a
    call that fails in TensorFlow gives `{"error": message}`.
    """
    command = [sys.executable, "-I", SERVE_SCRIPT]
    for i, (saved_model, feeds) in enumerate(jobs):
        inputs = os.path.join(tmp_dir, f"serve_inputs_{i}.npz")
        np.savez(
            inputs,
            **{f"{e}/{k}": v for e, feed in feeds.items() for k, v in feed.items()},
        )
        command += [saved_model, inputs, os.path.join(tmp_dir, f"serve_out_{i}.npz")]
    result = subprocess.run(command, capture_output=True, text=True, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    results = []
    for i in range(len(jobs)):
        out = {}
        with np.load(os.path.join(tmp_dir, f"serve_out_{i}.npz")) as data:
            for key in data.files:
                if key.startswith("signature:"):
                    continue
                endpoint, name = key.split("/")
                out.setdefault(endpoint, {})[name] = data[key]
                if name != "error":
                    np.testing.assert_array_equal(data[f"signature:{key}"], data[key])
        results.append(out)
    return results


def literal(array):
    """A Python literal of `array` for `saved_model_cli --input_exprs`."""
    array = np.asarray(array)
    if array.dtype.kind in "USO":  # strings keep their spaces
        return repr(array.tolist())
    return repr(array.tolist()).replace(" ", "")


# `saved_model_cli` with TensorFlow Text's ops registered first (the raw-input
# text endpoints tokenize with them; the installed script cannot load op libraries).
CLI_WITH_TEXT_OPS = (
    "import sys, tensorflow as tf; sys.path.insert(0, {here!r}); "
    "from serve_without_keras import load_text_ops; load_text_ops(tf); "
    "from tensorflow.python.tools.saved_model_cli import main; "
    "sys.argv[0] = 'saved_model_cli'; sys.exit(main())"
)


def saved_model_cli_run(
    saved_model, signature, input_exprs, input_files, tmp_dir, text_ops=False
):
    """Run `saved_model_cli run`; return `{output_key: array}` from its --outdir.

    `input_exprs`: `{input: array}` given as Python literals (`--input_exprs`);
    `input_files`: `{input: array}` given as `.npy` files (`--inputs`);
    `text_ops`: register TensorFlow Text's ops before running it.
    """
    assert os.path.isfile(SAVED_MODEL_CLI), f"{SAVED_MODEL_CLI} is missing"
    outdir = os.path.join(tmp_dir, f"cli_{signature}")
    program = [SAVED_MODEL_CLI]
    if text_ops:
        here = os.path.dirname(os.path.abspath(__file__))
        program = [sys.executable, "-c", CLI_WITH_TEXT_OPS.format(here=here)]
    command = [
        *program,
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
