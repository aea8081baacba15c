"""Each process's rows of every global batch, and the run files of process 0."""

import os

import keras
import numpy as np
import pytest

from keras_mm.cli.checkpoints import FollowerRunDir
from keras_mm.distribute.process_data import (
    ProcessBatches,
    process_dataset,
    process_rows,
)


class _Batches(keras.utils.PyDataset):
    """Global batches of 6 rows whose order is set per epoch."""

    def __init__(self):
        super().__init__()
        self.epoch = 0

    def __len__(self):
        return 2

    def __getitem__(self, i):
        start = 100 * self.epoch + 6 * i
        x = np.arange(start, start + 6)
        return {"x": x, "y": -x}, x % 2

    def set_epoch(self, epoch):
        self.epoch = epoch


def test_processes_take_their_rows_of_every_global_batch():
    batches = _Batches()
    parts = [ProcessBatches(batches, p, 3) for p in range(3)]
    parts[0].set_epoch(1)  # forwarded to the shared global batches
    assert len(parts[2]) == 2
    rows = [part[1][0]["x"] for part in parts]
    np.testing.assert_array_equal(np.concatenate(rows), batches[1][0]["x"])
    np.testing.assert_array_equal(parts[1][1][1], batches[1][1][2:4])
    with pytest.raises(ValueError, match="6 rows cannot be split evenly over 4"):
        process_rows(6, 0, 4)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.data: once, where TF runs"
)
def test_a_tf_dataset_is_cut_the_same_way():
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(({"x": np.arange(12)}, np.arange(12)))
    cut = process_dataset(data.batch(6), 6, 1, 2)
    x, y = next(iter(cut))
    np.testing.assert_array_equal(x["x"], [3, 4, 5])
    np.testing.assert_array_equal(y, [3, 4, 5])


def test_processes_other_than_0_keep_no_run_files(tmp_path):
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    run = FollowerRunDir(tmp_path / "run")
    run.write_json("run.json", {"a": 1})
    run.save_checkpoint(model, 1, [])  # saved (collectives), then deleted
    run.save_model(model, "model.keras", include_optimizer=False)
    run.clear()
    assert not os.path.exists(tmp_path / "run") and not run.writable
