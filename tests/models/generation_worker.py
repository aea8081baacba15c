"""Run `generate` of saved models under another backend (a helper, not a test).

Usage: `python generation_worker.py task.json`, where the task is
`{"model": m.keras, "inputs": x.npz, "calls": [kwargs, ...], "output": y.npz}`:
the worker loads the model under `KERAS_BACKEND`, calls
`model.generate(inputs, **kwargs)` for every kwargs and saves the token ids as
`y.npz` (keys "0", "1", ...). `generate_in_backends` runs it for several
backends in parallel and returns their token ids.
"""

import json
import os
import subprocess
import sys

import numpy as np


def generate_in_backends(backends, model_path, inputs, calls, workdir, timeout=400):
    """`{backend: [token ids per call]}` from fresh processes, one per backend."""
    inputs_path = os.path.join(workdir, "generation_inputs.npz")
    np.savez(inputs_path, **inputs)
    procs = {}
    for backend in backends:
        task = {
            "model": model_path,
            "inputs": inputs_path,
            "calls": calls,
            "output": os.path.join(workdir, f"generated_{backend}.npz"),
        }
        task_path = os.path.join(workdir, f"generation_task_{backend}.json")
        with open(task_path, "w") as f:
            json.dump(task, f)
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        procs[backend] = (
            subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), task_path],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
            task["output"],
        )
    results = {}
    for backend, (proc, output) in procs.items():
        stdout, stderr = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(
                f"generation under {backend} failed:\n{stdout[-2000:]}\n"
                f"{stderr[-4000:]}"
            )
        with np.load(output) as data:
            results[backend] = [data[str(i)] for i in range(len(calls))]
    return results


def main(task_path):
    import keras

    import keras_mm  # noqa: F401  (registers the classes)
    import keras_mm.models.captioner  # noqa: F401
    import keras_mm.models.dialogue  # noqa: F401

    if keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(1)
    with open(task_path) as f:
        task = json.load(f)
    model = keras.saving.load_model(task["model"], compile=False)
    with np.load(task["inputs"]) as data:
        inputs = {k: data[k] for k in data.files}
    outputs = {
        str(i): model.generate(inputs, **kwargs)
        for i, kwargs in enumerate(task["calls"])
    }
    np.savez(task["output"], **outputs)


if __name__ == "__main__":
    main(sys.argv[1])
