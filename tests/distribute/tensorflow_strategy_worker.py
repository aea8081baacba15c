"""One `CLIP.fit` step under a `tf.distribute` strategy, for tensorflow_strategy_test.

`python -m tests.distribute.tensorflow_strategy_worker all LOG_DIR PORT0 PORT1`
forks three runs (`fork_runs`): `mirrored` splits the CPU into 2 logical devices
(before TensorFlow starts) and runs the 4 cases (clip and siglip, naive and
tiled) under `MirroredStrategy`, plus one with the all-gather disabled (local
negatives); `worker0` and `worker1` run them under `MultiWorkerMirroredStrategy`,
one worker per process, on 127.0.0.1:PORT0 and :PORT1. Each prints one line
`RESULT {json}` to its log. (`... mirrored` or `... multiworker` with
`TF_CONFIG` set runs one of them alone.) `one_step` also gives the
single-device reference in the test process itself.

Every process of a run is fed the same global batches: Keras distributes the
dataset (`experimental_distribute_dataset`), which splits each global batch
into one contiguous slice per replica, across the workers too.
"""

import json
import os
import sys

import numpy as np

GLOBAL_BATCH, IMAGE_SHAPE, LENGTH, VOCAB, WIDTH, EMBED = 8, (4, 4, 3), 5, 12, 8, 8
LEARNING_RATE = 0.5
TILE = 3  # 8 rows: strips of 3, 3 and a zero-padded 2
# (loss, tile_size, with group labels): labels with a duplicate across replicas.
CASES = (
    ("clip", None, False),
    ("clip", TILE, True),
    ("siglip", None, True),
    ("siglip", TILE, False),
)
LABELS = np.array([0, 1, 2, 3, 0, 5, 6, 3], "int32")


def data():
    rng = np.random.default_rng(0)
    return {
        "images": rng.normal(size=(GLOBAL_BATCH, *IMAGE_SHAPE)).astype("float32"),
        "token_ids": rng.integers(1, VOCAB, size=(GLOBAL_BATCH, LENGTH), dtype="int32"),
    }


def build_clip(loss, tile_size):
    """A tiny CLIP with the same weights in every process (NumPy-seeded)."""
    import keras

    from keras_mm.models import CLIP

    images = keras.Input(IMAGE_SHAPE, name="images")
    image_encoder = keras.Model(
        images, keras.layers.Dense(WIDTH)(keras.layers.Flatten()(images))
    )
    tokens = keras.Input((LENGTH,), dtype="int32", name="token_ids")
    text_encoder = keras.Model(
        tokens,
        keras.layers.GlobalAveragePooling1D()(
            keras.layers.Embedding(VOCAB, WIDTH)(tokens)
        ),
    )
    model = CLIP(
        image_encoder, text_encoder, embed_dim=EMBED, loss=loss, tile_size=tile_size
    )
    rng = np.random.default_rng(1)
    for variable in model.weights:
        if "logits_head" not in variable.path:
            variable.assign(0.5 * rng.normal(size=variable.shape).astype("float32"))
    return model


def sliced_dataset(strategy, elements):
    """Each process reads its own rows of every global batch.

    The stream is batched at the global batch size `B`; process `p` of `n` keeps
    rows `[p * B / n, (p + 1) * B / n)` (a `map`), then per-replica batches. So
    every replica sees the rows it sees when TensorFlow splits the global batch.
    """
    import tensorflow as tf

    def make(context):
        size = GLOBAL_BATCH // context.num_input_pipelines
        start = context.input_pipeline_id * size

        def rows(*batch):
            batch = batch if len(batch) > 1 else batch[0]
            return tf.nest.map_structure(lambda t: t[start : start + size], batch)

        per_replica = context.get_per_replica_batch_size(GLOBAL_BATCH)
        dataset = tf.data.Dataset.from_tensor_slices(elements).batch(GLOBAL_BATCH)
        return dataset.map(rows).unbatch().batch(per_replica)

    return strategy.distribute_datasets_from_function(make)


def one_step(loss, tile_size, labels, strategy=None, eager=False, sliced=False):
    """(loss logged by `fit`, weights after one SGD step) on one global batch.

    `sliced`: feed `sliced_dataset`, else the global batches (which Keras
    distributes: TensorFlow splits each one into per-replica slices).
    """
    import contextlib

    import keras
    import tensorflow as tf

    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        model = build_clip(loss, tile_size)
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), run_eagerly=eager)
    elements = (data(), LABELS) if labels else data()
    if sliced:
        dataset = sliced_dataset(strategy, elements)
    else:
        dataset = tf.data.Dataset.from_tensor_slices(elements).batch(GLOBAL_BATCH)
    history = model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    weights = [np.asarray(w).tolist() for w in model.get_weights()]
    return {"loss": float(history.history["loss"][0]), "weights": weights}


def run(strategy, local_case=False, sliced=False):
    """The 4 cases under `strategy`; `sliced`: the last two fed by `sliced_dataset`."""
    result = {
        "replicas": int(strategy.num_replicas_in_sync),
        "cases": [
            one_step(*case, strategy=strategy, sliced=sliced and i >= 2)
            for i, case in enumerate(CASES)
        ],
    }
    if local_case:
        # The same step with the all-gather switched off (local negatives only),
        # run eagerly: it only has to show that the checks can fail.
        from keras_mm.distribute import collectives

        gather, collectives.all_gather = collectives.all_gather, lambda x: x
        try:
            result["local"] = one_step(*CASES[0], strategy=strategy, eager=True)
        finally:
            collectives.all_gather = gather
    return result


def main(mode):
    """One run: `mirrored`, or one `multiworker` task (as `TF_CONFIG` says)."""
    import tensorflow as tf

    # Graph optimisation only costs CPU time on this tiny model (the test budget).
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})

    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        strategy = tf.distribute.MirroredStrategy(
            [d.name for d in tf.config.list_logical_devices("CPU")]
        )
        result = run(strategy, local_case=True)
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        result = run(strategy, sliced=True)
        result["task"] = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    print("RESULT " + json.dumps(result), flush=True)


def fork_runs(log_dir, ports):
    """The 3 runs at once, as processes forked from this one (`ROLES`).

    This process imports TensorFlow and keras_mm, the costly part of a start
    (about 6 CPU-s), once, but never starts TensorFlow's runtime, so each child
    still fixes its own devices or cluster as a fresh process would. Each child
    writes to `log_dir/<role>.log`; when one fails the others are killed.
    """
    import signal

    import tensorflow  # noqa: F401

    import keras_mm  # noqa: F401

    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    children = {}
    for role, task in ROLES.items():
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: run, then exit (SystemExit or an exception)
            log = os.open(
                os.path.join(log_dir, f"{role}.log"), os.O_WRONLY | os.O_CREAT, 0o644
            )
            os.dup2(log, 1)
            os.dup2(log, 2)
            if task is not None:
                os.environ["TF_CONFIG"] = json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": task}}
                )
            main("mirrored" if task is None else "multiworker")
            sys.exit(0)
        children[pid] = role
    failed = []
    while children:
        pid, status = os.wait()
        role = children.pop(pid)
        if os.waitstatus_to_exitcode(status) != 0 and not failed:
            failed.append(role)
            for other in children:
                os.kill(other, signal.SIGKILL)
    print(f"FAILED {failed[0]}" if failed else "DONE", flush=True)
    sys.exit(1 if failed else 0)


# role -> MultiWorkerMirroredStrategy task index (None: the MirroredStrategy run)
ROLES = {"mirrored": None, "worker0": 0, "worker1": 1}

if __name__ == "__main__":
    if sys.argv[1] == "all":
        fork_runs(sys.argv[2], [int(p) for p in sys.argv[3:5]])
    else:
        main(sys.argv[1])
