"""Backend-neutral collectives the models call inside their loss.

`all_gather(x)` concatenates `x` of every replica (or process) on axis 0, in
replica order, with gradients (the backward gives each replica the sum over
replicas of the gradient of its own slice, as the engines' all-gather does);
it is the identity when nothing is distributed. The backend engine is imported
only when it is the running backend.
"""

import keras


def _torch_world_size():
    from keras_mm.distribute import torch_ddp

    return torch_ddp.world_size()


def all_gather(x):
    """`x` of every replica concatenated on axis 0 (identity when not distributed).

    torch: `torch.distributed.nn.functional.all_gather` when a process group
    with more than one process is initialised (`keras_mm.distribute.torch_ddp`).

    Args:
        x: tensor `(batch, ...)`; the batch may differ between replicas only
            where the engine allows it (torch: it must not).

    Returns:
        Tensor `(replicas * batch, ...)`, or `x` itself.
    """
    if keras.backend.backend() == "torch" and _torch_world_size() > 1:
        from keras_mm.distribute import torch_ddp

        return torch_ddp.all_gather_with_grad(x)
    return x


def replica_count():
    """int: the number of replicas whose batches make the global batch (1 if none)."""
    if keras.backend.backend() == "torch":
        return _torch_world_size()
    return 1
