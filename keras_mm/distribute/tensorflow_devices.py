"""TensorFlow devices and strategies for data-parallel `fit`.

- `use_cpu_devices(n)` splits the CPU into `n` logical devices (the stand-in
  for `n` GPUs on a machine without accelerators);
- `mirrored_strategy(n)`: `tf.distribute.MirroredStrategy` over the first `n`
  GPUs, or over `n` logical CPU devices;
- `multi_worker_strategy()`: `tf.distribute.MultiWorkerMirroredStrategy`,
  configured by `TF_CONFIG` (`tf_config(...)` writes one for a job on one
  machine).

Build, compile and `fit` the model inside `strategy.scope()`; `fit` then
splits every global batch between the replicas (replica `r` of `R` gets rows
`[r * B / R, (r + 1) * B / R)`), and the CLIP loss gathers the embeddings of
all replicas (`keras_mm.distribute.collectives`).
"""

import json
import os

import tensorflow as tf


def gpus():
    return tf.config.list_physical_devices("GPU")


def use_cpu_devices(count):
    """Split the CPU into `count` logical devices; return whether it has them.

    Only possible before TensorFlow's runtime starts (its first operation);
    afterwards this reports whether enough logical CPU devices exist.
    """
    if count < 1:
        raise ValueError(f"`count` must be >= 1. Received: count={count}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count
        )
    except RuntimeError:  # the runtime has started: devices are fixed
        pass
    return len(tf.config.list_logical_devices("CPU")) >= count


def mirrored_strategy(count):
    """`MirroredStrategy` over `count` GPUs, or `count` logical CPU devices."""
    kind = "GPU" if gpus() else "CPU"
    devices = [d.name for d in tf.config.list_logical_devices(kind)][:count]
    if len(devices) < count:
        raise ValueError(
            f"{count} devices were asked for; TensorFlow has {len(devices)} "
            f"{kind} devices"
        )
    if count == 1:
        return tf.distribute.OneDeviceStrategy(devices[0])
    if kind == "CPU":
        # NCCL is for GPUs; on CPU devices reduce through host memory.
        return tf.distribute.MirroredStrategy(
            devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    return tf.distribute.MirroredStrategy(devices)


def tf_config(host, port, num_workers, index):
    """A `TF_CONFIG` value for `num_workers` workers on `host`, ports `port + i`."""
    workers = [f"{host}:{port + i}" for i in range(num_workers)]
    return json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
    )


def cluster_from_env():
    """`(num_workers, index)` of `TF_CONFIG`, or None when it is not set."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            "TF_CONFIG must be JSON with cluster.worker (a list of host:port) and "
            f"task.index. Received: TF_CONFIG={text!r}"
        ) from None
    index = int(task.get("index", 0))
    if task.get("type", "worker") == "chief":
        raise ValueError(
            "TF_CONFIG: keras-mm runs workers only (worker 0 writes the run "
            f"files); use task.type 'worker'. Received: TF_CONFIG={text!r}"
        )
    return len(workers), index


def multi_worker_strategy():
    """`MultiWorkerMirroredStrategy` from `TF_CONFIG` (before any TF operation)."""
    return tf.distribute.MultiWorkerMirroredStrategy()


def replica_count(strategy):
    return strategy.num_replicas_in_sync
