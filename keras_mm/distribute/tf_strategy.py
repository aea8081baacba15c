"""Two work-arounds that let Keras 3.15's TF `fit` run under a multi-worker strategy.

`MultiWorkerMirroredStrategy` with Keras 3's TensorFlow trainer fails twice
before the first step (tensorflow/tensorflow#72388, closed unfixed):

1. `_maybe_symbolic_build` averages the first distributed batch over the
   replicas (`strategy.reduce`) only to read its shapes, and the multi-worker
   `reduce` refuses a nested (dict) batch: `first_replica_values` gives the same
   shapes from the first local replica's slice, with no collective.
2. `reduce_per_replica` reduces every log with `strategy.reduce("MEAN", v,
   axis=0)` in multi-worker mode, which refuses scalars: `reducible_logs` gives
   the scalar logs a leading axis of 1, which that reduction removes again
   (the mean over the replicas of values that Keras' metrics already agree on).

`keras_mm.models.MultimodalModel` applies both; elsewhere they are identities.
"""

import keras


def _tf():
    import tensorflow as tf

    return tf


def first_replica_values(data, strategy):
    """`data` with each TF `DistributedValues` replaced by its first local value."""
    if keras.backend.backend() != "tensorflow":
        return data
    tf = _tf()

    def first(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    return keras.tree.map_structure(first, data)


def in_multi_worker_mode():
    """Whether the current TF strategy is a `MultiWorkerMirroredStrategy` over
    several workers (the condition of Keras' multi-worker log reduction)."""
    if keras.backend.backend() != "tensorflow":
        return False
    tf = _tf()
    strategy = tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    in_mode = getattr(strategy.extended, "_in_multi_worker_mode", None)
    return bool(in_mode()) if in_mode is not None else False


def reducible_logs(logs):
    """Scalar logs as shape `(1,)` in multi-worker mode, else `logs` unchanged."""
    if not in_multi_worker_mode():
        return logs

    def expand(value):
        if hasattr(value, "shape") and len(value.shape) == 0:
            return keras.ops.reshape(value, (1,))
        return value

    return keras.tree.map_structure(expand, logs)
