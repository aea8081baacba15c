"""Each process's part of every global batch, for multi-process `fit`.

With `P` processes (JAX multi-process, torch DDP) every process iterates the
same stream of *global* batches of `B` rows (same seed, same order) and keeps
rows `[p * B / P, (p + 1) * B / P)`: process `p` then sees exactly the rows
device `p` sees when one process holds all the devices.
"""

import keras


def process_rows(batch_size, index, count):
    """The `slice` of a global batch of `batch_size` rows that process `index` keeps."""
    if batch_size % count:
        raise ValueError(
            f"a global batch of {batch_size} rows cannot be split evenly over "
            f"{count} processes"
        )
    per = batch_size // count
    return slice(index * per, (index + 1) * per)


def _take(batch, rows):
    return keras.tree.map_structure(lambda a: a[rows], batch)


class ProcessBatches(keras.utils.PyDataset):
    """A `PyDataset` of global batches, cut to one process's rows.

    Forwards `set_epoch`, `on_epoch_begin` and `on_epoch_end` to the wrapped
    dataset (its order depends on the epoch).

    Args:
        batches: `keras.utils.PyDataset` of global batches.
        index: int. This process's index.
        count: int. Number of processes.
    """

    def __init__(self, batches, index, count, **kwargs):
        super().__init__(**kwargs)
        self.batches, self.index, self.count = batches, index, count

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        batch = self.batches[i]
        size = len(keras.tree.flatten(batch)[0])
        return _take(batch, process_rows(size, self.index, self.count))

    def set_epoch(self, epoch):
        self.batches.set_epoch(epoch)

    def on_epoch_begin(self):
        self.batches.on_epoch_begin()

    def on_epoch_end(self):
        self.batches.on_epoch_end()


def process_dataset(dataset, batch_size, index, count):
    """A batched `tf.data.Dataset` cut to one process's rows of every batch."""
    rows = process_rows(batch_size, index, count)
    return dataset.map(
        lambda *batch: _take(batch if len(batch) > 1 else batch[0], rows)
    )
