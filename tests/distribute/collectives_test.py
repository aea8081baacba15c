"""`keras_mm.distribute` outside any data-parallel setup: identities, on every backend.

The multi-replica behaviour is checked per backend elsewhere
(tensorflow_strategy_test.py for `tf.distribute`).
"""

import numpy as np
from keras import ops

from keras_mm.distribute import all_gather, replica_count, scale_loss_for_replicas
from keras_mm.distribute.tf_strategy import first_replica_values, reducible_logs


def test_not_distributed_is_the_identity():
    x = ops.convert_to_tensor(np.arange(6, dtype="float32").reshape(3, 2))
    labels = ops.convert_to_tensor(np.array([0, 1, 0], "int32"))
    np.testing.assert_array_equal(ops.convert_to_numpy(all_gather(x)), x)
    np.testing.assert_array_equal(ops.convert_to_numpy(all_gather(labels)), labels)
    assert replica_count() == 1
    loss = ops.convert_to_tensor(2.5)
    assert float(ops.convert_to_numpy(scale_loss_for_replicas(loss))) == 2.5
    logs = {"loss": loss}
    assert reducible_logs(logs)["loss"] is loss
    assert first_replica_values({"x": x}, None)["x"] is x
