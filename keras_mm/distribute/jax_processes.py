"""JAX data parallelism: host devices, several processes, `DataParallel`.

Under `keras.distribution.DataParallel` a train step is one SPMD program over
the global batch: the contrastive loss sees every sample as a negative with
no keras_mm code (`collectives.all_gather` is the identity on JAX). This
module only prepares JAX for it, before the first computation:

- `use_cpu_devices(n)`: split the CPU into `n` devices (the stand-in for `n`
  accelerators; JAX's `jax_num_cpu_devices`, or
  `--xla_force_host_platform_device_count` for older versions);
- `initialize(coordinator, num_processes, process_id)`: join a multi-process
  job (`keras.distribution.initialize`, which wraps `jax.distributed`), with
  gloo as the CPU's cross-process collectives;
- `data_parallel(devices_per_process)`: the `DataParallel` distribution over
  the first devices of every process, each process feeding its own rows.

Each process of a multi-process job must pass `fit` its own slice of every
global batch of `B` rows: rows `[p * B / P, (p + 1) * B / P)` for process `p`
of `P` (`jax.make_array_from_process_local_data` joins them in process
order), which is what one process holding all the devices would give them.
"""

import os

import jax
import keras

FORCE_FLAG = "--xla_force_host_platform_device_count"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def backends_started():
    """bool: whether JAX has created its backends (devices are then fixed)."""
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


def use_cpu_devices(count):
    """Ask JAX for `count` CPU devices; return whether it has them (or more).

    Takes effect only before JAX's first computation (and starts nothing);
    afterwards this just reports whether the CPU devices made are enough.

    Args:
        count: int >= 1.

    Returns:
        bool: True when the CPU platform has at least `count` local devices.
    """
    if count < 1:
        raise ValueError(f"`count` must be >= 1. Received: count={count}")
    if not backends_started():
        if hasattr(jax.config, "jax_num_cpu_devices"):
            jax.config.update("jax_num_cpu_devices", int(count))
        else:  # older JAX: the XLA flag, read when the CPU client starts
            flags = [
                f
                for f in os.environ.get("XLA_FLAGS", "").split()
                if not f.startswith(FORCE_FLAG)
            ]
            os.environ["XLA_FLAGS"] = " ".join([*flags, f"{FORCE_FLAG}={count}"])
        return True  # without starting the backends (`initialize` may follow)
    return jax.local_device_count("cpu") >= count


def accelerators():
    """The local GPU or TPU devices (empty on a CPU-only machine)."""
    try:
        devices = jax.local_devices()
    except RuntimeError:
        return []
    return [d for d in devices if d.platform != "cpu"]


def initialize(coordinator, num_processes, process_id):
    """Join a job of `num_processes` JAX processes (before any computation).

    `keras.distribution.initialize`, with gloo as JAX's CPU collectives (its
    default since JAX 0.5; set here for older versions). Every process blocks
    until all have joined (JAX's `initialization_timeout`, 300 s).

    Args:
        coordinator: str. `"host:port"` of process 0, which listens there.
        num_processes: int >= 1.
        process_id: int in `[0, num_processes)`.
    """
    if backends_started():
        raise ValueError(
            "initialize must run before JAX's first computation (it fixes the "
            "devices of the job). Received: JAX backends already started"
        )
    if not 0 <= process_id < num_processes:
        raise ValueError(
            "`process_id` must be in [0, num_processes). Received: "
            f"process_id={process_id}, num_processes={num_processes}"
        )
    if "jax_cpu_collectives_implementation" in jax.config.values:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    host = coordinator.rsplit(":", 1)[0]
    if host in LOOPBACK and "JAX_COORDINATOR_BIND_ADDRESS" not in os.environ:
        # A job on one machine: listen on the loopback only (JAX's default
        # binds every interface).
        os.environ["JAX_COORDINATOR_BIND_ADDRESS"] = coordinator
    keras.distribution.initialize(coordinator, num_processes, process_id)


def process_index():
    return jax.process_index()


def process_count():
    return jax.process_count()


def data_parallel(devices_per_process):
    """`DataParallel` over the first `devices_per_process` devices of each process.

    Accelerators when the machine has them, else CPU devices
    (`use_cpu_devices`). The data is not sharded by Keras
    (`auto_shard_dataset=False`): each process feeds its own rows.

    Returns:
        `keras.distribution.DataParallel`.
    """
    kind = "cpu" if not accelerators() else None
    devices = jax.devices(kind)
    chosen = []
    for p in range(jax.process_count()):
        mine = [d for d in devices if d.process_index == p]
        if len(mine) < devices_per_process:
            raise ValueError(
                f"process {p} has {len(mine)} {mine[0].platform if mine else ''} "
                f"devices; {devices_per_process} were asked for"
            )
        chosen += mine[:devices_per_process]
    return keras.distribution.DataParallel(devices=chosen, auto_shard_dataset=False)


def shutdown():
    """Leave the multi-process job (a no-op when none was joined)."""
    if jax.distributed.is_initialized():
        jax.distributed.shutdown()
