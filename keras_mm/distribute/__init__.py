"""Cross-replica collectives for data-parallel training (docs/distributed.md).

The models call only `keras_mm.distribute.collectives`; each backend's own
distributed engine (tf.distribute, torch.distributed, JAX's SPMD) does the work.
This package is one of the places where backend imports are allowed.
"""

from keras_mm.distribute.collectives import (
    all_gather,
    replica_count,
    scale_loss_for_replicas,
)

__all__ = ["all_gather", "replica_count", "scale_loss_for_replicas"]
