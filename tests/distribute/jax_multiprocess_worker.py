"""Worker of jax_multiprocess_test.py: one `fit` step, single vs data-parallel.

`python -m tests.distribute.jax_multiprocess_worker OUT devices` runs in one
process whose JAX has 2 host devices (XLA_FLAGS set by the test);
`... OUT processes COORDINATOR NUM_PROCESSES PROCESS_ID` runs as one of the
processes of a multi-process job (`keras_mm.distribute.jax_processes`).
For each case (CLIP / SigLIP loss x naive / tiled) every process trains one
`fit` step under `DataParallel` from the case's initial weights (written by
the test in `OUT/initial.npz`), feeding its own rows of the global batch, and
writes its loss and weights to `OUT/<mode>-<process>.json`. The test computes
`reference` (one device holding the global batch) in its own process.
"""

import json
import os
import sys

import numpy as np

GLOBAL_BATCH = 8
LR = 0.01
VOCAB = 24
# (loss, tile_size, with group labels): tile 3 leaves a remainder strip; the
# labels put one group in both halves (rows 0 and 4, rows 1 and 7).
CASES = (
    ("clip", None, False),
    ("clip", 3, True),
    ("siglip", None, True),
    ("siglip", 3, False),
)
LABELS = np.array([0, 1, 2, 3, 0, 4, 5, 1], "int32")


def _clip(loss, tile_size):
    """A CLIP with one-layer towers: the loss, not the encoders, is under test."""
    import keras

    from keras_mm.models import CLIP

    images = keras.Input((8, 8, 3), name="images")
    image_features = keras.layers.Dense(8, activation="tanh")(
        keras.layers.Flatten()(images)
    )
    tokens = keras.Input((6,), dtype="int32", name="token_ids")
    text_features = keras.layers.GlobalAveragePooling1D()(
        keras.layers.Embedding(VOCAB, 8)(tokens)
    )
    model = CLIP(
        keras.Model(images, image_features),
        keras.Model(tokens, text_features),
        embed_dim=8,
        loss=loss,
        tile_size=tile_size,
    )
    if loss == "siglip":
        # From SigLIP's bias of -10 the negatives weigh almost nothing, and
        # local negatives would give nearly the global loss.
        model.logits_head.bias.assign(-2.0)
    return model


def _data():
    rng = np.random.default_rng(5)
    return {
        "images": rng.normal(size=(GLOBAL_BATCH, 8, 8, 3)).astype("float32"),
        "token_ids": rng.integers(1, VOCAB, size=(GLOBAL_BATCH, 6)).astype("int32"),
    }


def _step(model, x, y, batch_size):
    import keras

    model.compile(optimizer=keras.optimizers.SGD(LR))
    history = model.fit(x, y, batch_size=batch_size, shuffle=False, verbose=0)
    weights = [np.asarray(w).tolist() for w in model.get_weights()]
    return history.history["loss"][0], weights


def _local_loss(model, x, y, shards):
    """Mean of the shards' own losses (what per-device negatives compute).

    The naive loss of each shard's rows of the global batch's embeddings
    (the tiled loss equals it to float rounding).
    """
    from keras_mm.models.clip.clip_model import embedding_contrastive_loss

    pred = model(x)
    per = GLOBAL_BATCH // shards
    losses = []
    for s in range(shards):
        rows = slice(s * per, (s + 1) * per)
        loss = embedding_contrastive_loss(
            model.loss_name,
            model.logits_head,
            pred["image_embeddings"][rows],
            pred["text_embeddings"][rows],
            labels=None if y is None else y[rows],
        )
        losses.append(float(loss))
    return float(np.mean(losses))


def reference(case_index):
    """`(initial weights, local loss, (loss, weights))` of one device, one step."""
    import keras

    loss, tile, labels = CASES[case_index]
    x, y = _data(), LABELS if labels else None
    keras.utils.set_random_seed(case_index)
    model = _clip(loss, tile)
    initial = model.get_weights()
    local = _local_loss(model, x, y, 2)
    return initial, local, _step(model, x, y, GLOBAL_BATCH)


def run(out, mode, coordinator=None, num_processes=1, process_id=0):
    """Every case's data-parallel step; writes `OUT/<mode>-<process>.json`."""
    from keras_mm.distribute import jax_processes

    if mode == "processes":
        jax_processes.initialize(coordinator, num_processes, process_id)
    import keras

    count, me = jax_processes.process_count(), jax_processes.process_index()
    devices_per_process = 2 if mode == "devices" else 1
    with np.load(os.path.join(out, "initial.npz")) as saved:
        initial = [
            [saved[f"{i}/{j}"] for j in range(int(saved[f"{i}/count"]))]
            for i in range(len(CASES))
        ]
    x = _data()
    rows = slice(me * GLOBAL_BATCH // count, (me + 1) * GLOBAL_BATCH // count)
    x = {k: v[rows] for k, v in x.items()}
    result = {"processes": count, "process": me, "cases": []}
    keras.distribution.set_distribution(
        jax_processes.data_parallel(devices_per_process)
    )
    for (loss, tile, labels), weights in zip(CASES, initial):
        model = _clip(loss, tile)
        model.set_weights(weights)
        y = LABELS[rows] if labels else None
        step = _step(model, x, y, GLOBAL_BATCH // count)
        placed = len(model.weights[0].value.sharding.device_set)
        result["cases"].append({"dist": step, "placed": placed})
    keras.distribution.set_distribution(None)
    path = os.path.join(out, f"{mode}-{me}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(path + ".tmp", path)
    jax_processes.shutdown()


def save_initial(out, initial):
    """Write every case's initial weights for the workers."""
    arrays = {}
    for i, weights in enumerate(initial):
        arrays[f"{i}/count"] = np.asarray(len(weights))
        arrays.update({f"{i}/{j}": w for j, w in enumerate(weights)})
    np.savez(os.path.join(out, "initial.npz"), **arrays)


if __name__ == "__main__":
    out, mode, *rest = sys.argv[1:]
    if mode == "processes":
        run(out, mode, rest[0], int(rest[1]), int(rest[2]))
    else:
        run(out, mode)
