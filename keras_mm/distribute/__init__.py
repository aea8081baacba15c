"""Data-parallel training with global negatives, on each backend's own engine.

`collectives` holds the backend-neutral calls the models make (`all_gather`,
`replica_count`); `torch_ddp` runs `model.fit` under
`torch.nn.parallel.DistributedDataParallel`; `jax_processes` sets up JAX host
devices and multi-process `keras.distribution` (docs/distributed.md). Backend
modules are imported lazily, so importing this package imports no engine.
"""

from keras_mm.distribute.collectives import (
    all_gather,
    replica_count,
    scale_loss_for_replicas,
)

__all__ = ["all_gather", "replica_count", "scale_loss_for_replicas"]
