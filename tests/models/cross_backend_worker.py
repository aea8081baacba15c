"""Run model tasks under the backend of `KERAS_BACKEND` (a helper, not a test).

Usage: `python cross_backend_worker.py tasks.json`. Each task is a dict:

- `{"kind": "outputs", "model": m.keras, "inputs": x.npz, "output": y.npz}`:
  load the model and save its `predict` outputs on the inputs;
- `{"kind": "train", "model": m.keras, "batches": b.npz, "steps": k, "lr": f,
  "name": str}`: load the model, compile it with `SGD(lr)` and record the
  losses of `train_on_batch` on batches `0..k-1` (keys `"<i>/<input key>"`).

Results go to `results.json` beside `tasks.json`.
"""

import json
import os
import sys

import keras
import numpy as np

import keras_mm  # noqa: F401  (registers the classes)

if keras.backend.backend() == "torch":
    import torch

    torch.set_num_threads(1)


def _load_dict(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def main(manifest):
    with open(manifest) as f:
        tasks = json.load(f)
    results = {"backend": keras.backend.backend()}
    for task in tasks:
        model = keras.saving.load_model(task["model"], compile=False)
        if task["kind"] == "outputs":
            outputs = model.predict(_load_dict(task["inputs"]), verbose=0)
            np.savez(task["output"], **outputs)
        elif task["kind"] == "train":
            model.compile(optimizer=keras.optimizers.SGD(task["lr"]))
            flat = _load_dict(task["batches"])
            losses = []
            for i in range(task["steps"]):
                batch = {
                    k.split("/", 1)[1]: v
                    for k, v in flat.items()
                    if k.startswith(f"{i}/")
                }
                logs = model.train_on_batch(batch, return_dict=True)
                losses.append(float(logs["loss"]))
            results[task["name"]] = losses
    out = os.path.join(os.path.dirname(manifest), "results.json")
    with open(out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(sys.argv[1])
