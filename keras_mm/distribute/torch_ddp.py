"""Data-parallel `model.fit` on torch: DistributedDataParallel around a Keras model.

One process per device (gloo on CPU, NCCL on CUDA), started by `torchrun`
(then `init_from_env()`) or by `launch(fn, nprocs)`. Inside each process,
`with data_parallel(model): model.fit(local_batches)` trains through
`torch.nn.parallel.DistributedDataParallel` (DDP): the forward and the loss
run in DDP's module, DDP averages the gradients over processes during
`backward`, and the model's own Keras optimizer applies them, so Keras
callbacks, checkpoints and learning-rate schedules work unchanged.

Global negatives: the CLIP loss gathers the embeddings of every process with
`all_gather_with_grad` (`keras_mm.distribute.collectives.all_gather`), so
each process computes the loss of the whole global batch, as open_clip's
`gather_with_grad`. The backward of the gather sums, onto each process's own
slice, the gradients of all `N` processes: `N` times the global loss's
gradient of that slice; DDP's average over processes divides by `N` again,
which gives exactly the gradient of one process holding the global batch
(`tests/distribute/torch_ddp_test.py` checks it to 1e-5). The loss needs no
`1 / N` scaling.

Each process must feed its own rows of every global batch (docs/distributed.md):
batch the data at the global batch size `B` and keep rows
`[rank * B / N, (rank + 1) * B / N)`.
"""

import contextlib
import datetime
import functools
import os
import pickle
import shutil
import tempfile
import time
import warnings

import keras
import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_functional
import torch.multiprocessing as torch_mp
from torch.multiprocessing.spawn import ProcessException
from torch.nn.parallel import DistributedDataParallel

try:  # torch's successor of the deprecated torch.distributed.nn.functional
    from torch.distributed._functional_collectives import (
        all_gather_single as _all_gather_single,
    )
except ImportError:
    _all_gather_single = None

HOST = "127.0.0.1"
START_METHODS = ("spawn", "fork", "forkserver")
ENV_KEYS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def world_size():
    """int: processes in the default process group (1 when none is initialised)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def rank():
    """int: this process's rank in the default process group (0 when none)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


# ------------------------------------------------------------------ gather
def all_gather_with_grad(x):
    """`x` of every process concatenated on axis 0, in rank order, differentiable.

    open_clip's `gather_with_grad`: torch's differentiable all-gather,
    `torch.distributed._functional_collectives.all_gather_single` (torch 2.13
    deprecates the `torch.distributed.nn.functional.all_gather` open_clip
    calls, which is used where the former is missing); its backward gives
    each process the sum over processes of the gradient of its own slice.
    Every process must call it, with the same shape (drop the last partial
    global batch).

    Args:
        x: tensor `(batch, ...)`.

    Returns:
        Tensor `(world_size * batch, ...)`; `x` when not distributed.
    """
    x = keras.ops.convert_to_tensor(x)
    n = world_size()
    if n == 1:
        return x
    sizes = [torch.zeros(1, dtype=torch.int64, device=x.device) for _ in range(n)]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
    sizes = [int(s.item()) for s in sizes]
    if len(set(sizes)) > 1:
        raise ValueError(
            "all_gather_with_grad: every process must hold the same batch size "
            "(batch the data at the global batch size with drop_remainder=True and "
            f"give each process an equal slice). Received: batch sizes by rank={sizes}"
        )
    if _all_gather_single is None:  # torch without functional collectives
        return torch.cat(dist_functional.all_gather(x), dim=0)
    gathered = _all_gather_single(x, 0, dist.group.WORLD)
    return gathered.wait() if hasattr(gathered, "wait") else gathered


# ----------------------------------------------------------- data parallel
class _ForwardAndLoss(torch.nn.Module):
    """The Keras model's forward and loss as one torch module, for DDP."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        # Every variable, also those of nested models whose paths collide
        # (Keras keys its torch parameters by path and would register one).
        self.keras_variables = torch.nn.ParameterList(
            [v.value for v in model.variables]
        )

    def forward(self, x, y, sample_weight):
        model = self.model
        if model._call_has_training_arg:
            y_pred = model(x, training=True)
        else:
            y_pred = model(x)
        loss = model._compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )
        return loss, y_pred


def _train_step(model, ddp, data):
    """Keras 3's torch `train_step` (keras/src/backend/torch/trainer.py) via DDP."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    ddp.module.zero_grad(set_to_none=True)
    loss, y_pred = ddp(x, y, sample_weight)
    batch = next(t for t in keras.tree.flatten(x) if t is not None).shape[0]
    model._loss_tracker.update_state(loss, sample_weight=batch)
    if model.optimizer is not None:
        loss = model.optimizer.scale_loss(loss)
    weights = model.trainable_weights[:]
    if weights:
        loss.backward()  # DDP averages the gradients over processes here
        gradients = [v.value.grad for v in weights]
        with torch.no_grad():
            model.optimizer.apply(gradients, weights)
    else:
        warnings.warn("The model does not have any trainable weights.")
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


@contextlib.contextmanager
def data_parallel(model, **ddp_kwargs):
    """Within the block, `model.fit` trains data-parallel through DDP.

    Wraps the model's forward and loss in
    `torch.nn.parallel.DistributedDataParallel` (which first copies process
    0's weights to every process) and installs a `train_step` that runs them
    through it; the rest of `fit` (optimizer, callbacks, schedules) is Keras'.
    Each process passes its own rows of every global batch to `fit`.

    Args:
        model: a built Keras model on the torch backend.
        **ddp_kwargs: passed to `DistributedDataParallel` (e.g.
            `find_unused_parameters=True` for a model whose loss leaves some
            trainable weights without a gradient).

    Yields:
        The `DistributedDataParallel` module.

    Example (in each process; docs/distributed.md has a whole script):

        init_from_env()
        with data_parallel(model):
            model.fit(local_batches, epochs=2)
    """
    if keras.backend.backend() != "torch":
        raise ValueError(
            "data_parallel needs the torch backend. Received: "
            f"keras.backend.backend()={keras.backend.backend()!r}"
        )
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            "data_parallel needs an initialised torch.distributed process group: "
            "call keras_mm.distribute.torch_ddp.init_from_env() (under torchrun) or "
            "run inside keras_mm.distribute.torch_ddp.launch(...). Received: "
            "torch.distributed.is_initialized()=False"
        )
    if not model.built or not model.variables:
        raise ValueError(
            "data_parallel needs a built model with variables. Received: "
            f"model.built={model.built}, {len(model.variables)} variables"
        )
    module = _ForwardAndLoss(model)
    device = next(module.parameters()).device
    device_ids = [device] if device.type == "cuda" else None
    ddp = DistributedDataParallel(module, device_ids=device_ids, **ddp_kwargs)
    model.train_step = functools.partial(_train_step, model, ddp)
    model.train_function = None
    try:
        yield ddp
    finally:
        del model.train_step
        model.train_function = None


# --------------------------------------------------------------- processes
def _default_backend(nprocs=1):
    if torch.cuda.is_available() and torch.cuda.device_count() >= nprocs:
        return "nccl"
    return "gloo"


def _timedelta(timeout):
    return datetime.timedelta(seconds=float(timeout))


def init_from_env(backend=None, timeout=1800):
    """Join the process group described by torchrun's environment variables.

    Reads `RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT` and `LOCAL_RANK`
    (set by `torchrun`); on CUDA selects device `LOCAL_RANK` before any
    variable is made. Does nothing when the group already exists.

    Args:
        backend: `"gloo"`, `"nccl"` or None (NCCL when CUDA is available).
        timeout: float. Seconds a collective may wait for the other processes.

    Returns:
        `(rank, world_size)`.
    """
    if dist.is_initialized():
        return rank(), world_size()
    missing = [k for k in ENV_KEYS if k not in os.environ]
    if missing:
        raise ValueError(
            "init_from_env reads the variables torchrun sets; start the script "
            f"with `torchrun --nproc-per-node N script.py`. Received: {missing} "
            "missing from the environment"
        )
    backend = backend or _default_backend()
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend, init_method="env://", timeout=_timedelta(timeout))
    return rank(), world_size()


def _worker(index, fn, args, nprocs, port, backend, timeout, results):
    """One launched process: join the group, run `fn(*args)`, save its result."""
    os.environ.update(
        RANK=str(index),
        LOCAL_RANK=str(index),
        WORLD_SIZE=str(nprocs),
        LOCAL_WORLD_SIZE=str(nprocs),
        MASTER_ADDR=HOST,
        MASTER_PORT=str(port),
    )
    if backend == "nccl":
        torch.cuda.set_device(index)
    store = dist.TCPStore(HOST, port, nprocs, is_master=False, timeout=timeout)
    dist.init_process_group(
        backend, store=store, rank=index, world_size=nprocs, timeout=timeout
    )
    try:
        result = fn(*args)
    finally:
        dist.destroy_process_group()
    with open(os.path.join(results, f"rank{index}.pkl"), "wb") as f:
        pickle.dump(result, f)


def _failures(context, error):
    """Every failed process's traceback (the first to exit may be a bystander)."""
    lines = []
    for index, path in enumerate(context.error_files):
        if path and os.path.exists(path) and os.path.getsize(path):
            with open(path, "rb") as f:
                lines.append(f"-- process {index}:\n{pickle.load(f)}")
    if not lines:
        lines.append(str(error))
    return "launch: a process failed; all were stopped.\n" + "\n".join(lines)


def launch(fn, nprocs, *args, timeout=600, backend=None, start_method="spawn"):
    """Run `fn(*args)` in `nprocs` processes of one process group on this machine.

    torch's own launcher (`torch.multiprocessing.start_processes`); the group
    meets at a `TCPStore` on 127.0.0.1 whose port the system picks free. Each
    process sees torchrun's environment variables (`RANK`, `WORLD_SIZE`, ...).
    If a process fails, the others are stopped and a `RuntimeError` holds
    the tracebacks of the failed processes; after `timeout` seconds all are
    killed (`TimeoutError`).

    Args:
        fn: a module-level (picklable) function; it may call `rank()`.
        nprocs: int >= 1. Number of processes.
        *args: picklable arguments of `fn`.
        timeout: float. Seconds before every process is killed (also the
            collectives' timeout).
        backend: `"gloo"`, `"nccl"` or None (NCCL when there are `nprocs`
            CUDA devices, else gloo).
        start_method: `"spawn"` (safe default; each process imports Keras
            anew), `"fork"` (fast, CPU only) or `"forkserver"`.

    Returns:
        List of `fn`'s return values, by rank.
    """
    if isinstance(nprocs, bool) or not isinstance(nprocs, int) or nprocs < 1:
        raise ValueError(f"`nprocs` must be an int >= 1. Received: nprocs={nprocs!r}")
    if not timeout or timeout <= 0:
        raise ValueError(f"`timeout` must be > 0 seconds. Received: timeout={timeout}")
    if start_method not in START_METHODS:
        raise ValueError(
            f"`start_method` must be one of {START_METHODS}. "
            f"Received: start_method={start_method!r}"
        )
    backend = backend or _default_backend(nprocs)
    delta = _timedelta(timeout)
    store = dist.TCPStore(
        HOST, 0, nprocs, is_master=True, wait_for_workers=False, timeout=delta
    )
    results = tempfile.mkdtemp(prefix="keras_mm_launch_")
    worker_args = (fn, args, nprocs, store.port, backend, delta, results)
    previous = os.environ.get("KERAS_BACKEND")
    os.environ["KERAS_BACKEND"] = "torch"  # the children import Keras on torch
    try:
        context = torch_mp.start_processes(
            _worker, worker_args, nprocs, join=False, start_method=start_method
        )
    finally:
        if previous is None:
            del os.environ["KERAS_BACKEND"]
        else:
            os.environ["KERAS_BACKEND"] = previous
    deadline = time.monotonic() + timeout
    try:
        try:
            while not context.join(
                timeout=max(0.0, deadline - time.monotonic()), grace_period=5
            ):
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"launch: the {nprocs} processes did not end within "
                        f"timeout={timeout} s; all were killed."
                    )
        except ProcessException as error:
            raise RuntimeError(_failures(context, error)) from None
        outputs = []
        for index in range(nprocs):
            with open(os.path.join(results, f"rank{index}.pkl"), "rb") as f:
                outputs.append(pickle.load(f))
        return outputs
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
            process.join()
        shutil.rmtree(results, ignore_errors=True)
