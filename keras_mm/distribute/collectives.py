"""`all_gather` and the replica count, dispatched on the Keras backend.

A contrastive loss needs every replica's samples as negatives. Under data
parallelism each replica holds only its slice of the global batch, so the
embeddings are gathered (with gradients) before the loss, as open_clip's
`gather_features(..., gather_with_grad=True)` does on torch DDP:

- tensorflow: `tf.distribute.ReplicaContext.all_gather` inside a replica context
  with more than one replica (`MirroredStrategy`, `MultiWorkerMirroredStrategy`
  inside `model.fit`). The gradient all-reduces (sums) the upstream gradients
  and gives each replica the rows of its own slice (written out here, see
  `_tf_all_gather`).
- torch: `keras_mm.distribute.torch_ddp.all_gather_with_grad` when
  `torch.distributed` is initialised with a world size above 1.
- jax: identity. Under `keras.distribution.DataParallel` the train step is one
  SPMD program over the global batch, so the loss already sees every sample.

Everything is the identity (and the count 1) when nothing is distributed.
"""

import keras


def _tf_replica_context():
    """The TF replica context with more than one replica, or None."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context


def _torch_world_size():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _tf_all_gather(x, context):
    """`ReplicaContext.all_gather` on axis 0 with its gradient written out.

    TensorFlow's own gradient of `all_gather` gathers the slice sizes inside the
    backward pass, where a graph tensor has no device; with one replica per
    worker (`MultiWorkerMirroredStrategy` on CPU) gathering a tensor without a
    device fails ("destinations can not be empty"). Here the sizes are gathered
    in the forward pass, and the backward is the same all-reduce (sum) of the
    upstream gradient followed by this replica's rows. Slices of different
    sizes (a last partial batch) work.
    """
    import tensorflow as tf

    # A new op takes the replica's device; a graph input (labels from the
    # dataset) has none, which the multi-worker gather refuses too.
    x = tf.identity(x)
    if not x.dtype.is_floating:  # labels: no gradient
        return context.all_gather(x, axis=0)
    size = tf.shape(x)[:1]
    sizes = context.all_gather(size, axis=0)
    begin = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])

    @tf.custom_gradient
    def gather(local):
        def grad(upstream):
            total = context.all_reduce(tf.distribute.ReduceOp.SUM, upstream)
            return total[begin : begin + size[0]]

        return context.all_gather(local, axis=0), grad

    return gather(x)


def replica_count():
    """int: how many replicas `all_gather` concatenates (1 when not distributed).

    TensorFlow: `num_replicas_in_sync` of the current replica context (1 in a
    cross-replica context); torch: the `torch.distributed` world size; JAX: 1
    (the step is one program over the global batch).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        context = _tf_replica_context()
        return 1 if context is None else int(context.num_replicas_in_sync)
    if backend == "torch":
        return _torch_world_size()
    return 1


def all_gather(x):
    """`x` of every replica concatenated on axis 0, in replica order.

    Differentiable: the backward pass gives each replica the gradient of its own
    rows, summed over the replicas (the engines' all-gather gradient). The
    identity when nothing is distributed. Integer tensors (group labels) are
    gathered the same way.

    Args:
        x: tensor `(local_batch, ...)`.

    Returns:
        Tensor `(global_batch, ...)`; replica `r`'s rows come `r`-th.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        context = _tf_replica_context()
        return x if context is None else _tf_all_gather(x, context)
    if backend == "torch" and _torch_world_size() > 1:
        from keras_mm.distribute.torch_ddp import all_gather_with_grad

        return all_gather_with_grad(x)
    return x


def scale_loss_for_replicas(loss):
    """`loss / num_replicas` inside a TF replica context, else `loss`.

    Keras' TensorFlow trainer calls `compute_loss` once per replica, sums the
    replicas' gradients (`optimizer.apply_gradients` all-reduces with SUM) and
    logs `loss * num_replicas` (`unscale_loss_for_distribution`); its built-in
    losses divide by `num_replicas` to match. A custom `compute_loss` must do the
    same, or the update is `num_replicas` times too large. Then:

    - a per-replica mean loss gives the mean over the global batch;
    - a global loss computed identically on every replica from `all_gather`ed
      embeddings gives exactly its gradient: `all_gather`'s backward sums the
      `1 / n` upstream gradients of the `n` replicas onto each slice.

    torch (DDP averages gradients over ranks) and JAX (one global program) need
    no scaling.
    """
    if keras.backend.backend() != "tensorflow":
        return loss
    context = _tf_replica_context()
    if context is None:
        return loss
    return loss * (1.0 / context.num_replicas_in_sync)
