"""`keras-mm train` on several devices and processes, on every backend.

`--devices N` trains data-parallel on `N` devices of this process: the first
`N` GPUs, or, on a machine without accelerators, the CPU split into `N`
devices (TensorFlow logical devices under `MirroredStrategy`, JAX host devices
under `keras.distribution.DataParallel`, `N` torch processes under
`DistributedDataParallel`). `--num-processes P --process-id I --coordinator
HOST:PORT` (or the backends' own environment: `TF_CONFIG`, torchrun's
`RANK`/`WORLD_SIZE`/`MASTER_ADDR`/`MASTER_PORT`, Keras'
`KERAS_DISTRIBUTION_*`) make this process one of a multi-process job.
`--batch-size` is the global batch, split evenly over all devices.

Devices are fixed when the backend starts, so `plan` runs before anything
touches a device and `start` configures the backend (engine calls live in
`keras_mm.distribute`); when this process's backend has already started with
other devices (an in-process call, e.g. from a test), the command runs again
in a fresh interpreter. Only process 0 writes the run directory.
"""

import dataclasses
import json
import os
import subprocess
import sys

from keras_mm.cli.devices import Runtime
from keras_mm.cli.parser import UsageError

FRESH_ENV = "KERAS_MM_FRESH_PROCESS"  # set in the re-run: never re-run again
# torch: how `--devices N` starts its processes ("spawn", or "fork" in tests)
# and how long they may run in all (seconds; they are killed after).
START_METHOD_ENV = "KERAS_MM_START_METHOD"
LAUNCH_TIMEOUT_ENV = "KERAS_MM_LAUNCH_TIMEOUT"
DEFAULT_LAUNCH_TIMEOUT = 7 * 24 * 3600
DEFAULT_BATCH_SIZE = 64  # run_config.DEFAULTS (not imported: it imports Keras)
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
KERAS_ENV = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)


@dataclasses.dataclass
class Plan:
    """Devices and processes of a run (`devices` per process)."""

    backend: str
    devices: int = 1
    processes: int = 1
    process_id: int = 0
    coordinator: str = None
    source: str = None  # where the multi-process settings came from
    launch: int = 0  # torch: processes this command starts

    @property
    def total_devices(self):
        return self.devices * self.processes

    @property
    def chief(self):
        return self.process_id == 0

    @property
    def single(self):
        return self.total_devices == 1 and self.processes == 1


# The plan of the command running in this process (set by `start`).
_ACTIVE = None


def _saved_config(args):
    """`run.json` of the run to resume (read without Keras), or {}."""
    if not getattr(args, "resume", False):
        return {}
    try:
        with open(os.path.join(args.output, "run.json"), encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return {}  # resolve_config reports it
    return config if isinstance(config, dict) else {}


def _int_env(name):
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"${name} must be an integer, got {value!r}") from None


def _processes_from_env(backend):
    """`(num_processes, process_id, coordinator, source)` from the environment."""
    if backend == "tensorflow" and os.environ.get("TF_CONFIG"):
        from keras_mm.distribute.tensorflow_devices import cluster_from_env

        try:
            count, index = cluster_from_env()
        except ValueError as error:
            raise UsageError(str(error)) from None
        return count, index, None, "TF_CONFIG"
    if backend == "torch" and all(k in os.environ for k in TORCHRUN_ENV):
        address = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
        return _int_env("WORLD_SIZE"), _int_env("RANK"), address, "torchrun"
    if backend == "jax" and KERAS_ENV[1] in os.environ:
        address = os.environ.get(KERAS_ENV[0], "").split(",")[0] or None
        index = _int_env(KERAS_ENV[2]) if KERAS_ENV[2] in os.environ else None
        return _int_env(KERAS_ENV[1]), index, address, "KERAS_DISTRIBUTION_*"
    return 1, 0, None, None


def _check_coordinator(address):
    host, sep, port = (address or "").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--coordinator must be HOST:PORT, got {address!r}")


def plan(args, backend):
    """The `Plan` of a `train` command, checked before the backend starts."""
    flags = (args.num_processes, args.process_id, args.coordinator)
    if any(f is not None for f in flags):
        processes = args.num_processes or 1
        process_id = args.process_id or 0
        coordinator, source = args.coordinator, "flags"
        if processes > 1 and (args.process_id is None or coordinator is None):
            raise UsageError(
                "--num-processes > 1 needs --process-id and --coordinator HOST:PORT "
                "(the address of process 0)"
            )
    else:
        processes, process_id, coordinator, source = _processes_from_env(backend)
        if process_id is None:
            raise UsageError(f"${KERAS_ENV[2]} is needed with ${KERAS_ENV[1]}")
    if not 0 <= process_id < processes:
        raise UsageError(
            f"--process-id must be in [0, {processes}) with {processes} processes, "
            f"got {process_id}"
        )
    if processes > 1 and backend != "tensorflow":
        if coordinator is None:
            raise UsageError("a multi-process run needs --coordinator HOST:PORT")
        _check_coordinator(coordinator)
    saved = _saved_config(args)
    devices = args.devices
    if devices is None:  # --resume keeps the run's devices
        devices = max(int(saved.get("devices", 1)) // processes, 1)
    result = Plan(backend, devices, processes, process_id, coordinator, source)
    if backend == "torch" and devices > 1:
        if processes > 1:
            raise UsageError(
                "on torch each process drives one device: start one process per "
                "device (torchrun --nproc-per-node N) and leave --devices at 1"
            )
        result = Plan(backend, 1, devices, 0, None, "launch", launch=devices)
    total = result.total_devices
    if saved and int(saved.get("devices", 1)) != total:
        raise UsageError(
            f"--resume continues a run trained on {saved.get('devices', 1)} "
            f"device(s) with the same number of devices; this run would use {total} "
            f"(pass --devices {int(saved.get('devices', 1)) // processes or 1})"
        )
    if result.single:
        return result
    family = args.family or saved.get("family", "clip")
    if family != "clip":
        raise UsageError(
            "--devices and --num-processes apply to --family clip only, got "
            f"--family {family}"
        )
    batch = args.batch_size or saved.get("batch_size", DEFAULT_BATCH_SIZE)
    if batch % total:
        where = f"{total} devices"
        if result.processes > 1 and not result.launch:
            where += f" ({result.processes} processes x {result.devices})"
        raise UsageError(
            f"--batch-size {batch} (the global batch) must be a multiple of the "
            f"{where} it is split over"
        )
    return result


# ------------------------------------------------------------------- start
def _rerun(argv, backend):
    """Run the command again in a fresh interpreter; return its exit code."""
    if os.environ.get(FRESH_ENV):
        raise UsageError(
            "the backend started before its devices could be configured; run "
            "keras-mm as its own process"
        )
    env = dict(os.environ, KERAS_BACKEND=backend, **{FRESH_ENV: "1"})
    sys.stdout.flush()
    sys.stderr.flush()
    return subprocess.call([sys.executable, "-m", "keras_mm.cli", *argv], env=env)


def _torch_child(argv, plan_fields):
    """A process started by `--devices N` on torch: run the command in it."""
    from keras_mm.cli.app import run
    from keras_mm.distribute import torch_ddp

    global _ACTIVE
    _ACTIVE = Runtime(Plan(**dict(plan_fields, process_id=torch_ddp.rank())))
    try:
        return run(argv)
    finally:
        _ACTIVE = None


def _launch_torch(argv, plan):
    from keras_mm.distribute import torch_ddp

    timeout = float(os.environ.get(LAUNCH_TIMEOUT_ENV, DEFAULT_LAUNCH_TIMEOUT))
    method = os.environ.get(START_METHOD_ENV, "spawn")
    fields = dataclasses.asdict(plan)
    fields["launch"] = 0
    codes = torch_ddp.launch(
        _torch_child, plan.launch, argv, fields, timeout=timeout, start_method=method
    )
    return next((c for c in codes if c), 0)


def start(args, argv, backend):
    """Configure the backend for `args`; return None to train in this process.

    Otherwise the command ran elsewhere (torch processes, or a fresh
    interpreter) and the return value is its exit code.
    """
    global _ACTIVE
    if _ACTIVE is not None:  # a torch process started by `--devices N`
        return None
    current = plan(args, backend)
    if current.single:
        _ACTIVE = Runtime(current)
        return None
    if current.launch:
        return _launch_torch(argv, current)
    runtime = Runtime(current)
    if not runtime.configure():
        return _rerun(argv, backend)
    _ACTIVE = runtime
    return None


def finish():
    """Forget the command's runtime (in-process calls run several commands)."""
    global _ACTIVE
    _ACTIVE = None


def runtime():
    """The `Runtime` of the running `train` command (one device if none)."""
    import keras

    return _ACTIVE or Runtime(Plan(keras.backend.backend()))
