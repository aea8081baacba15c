"""A `keras.utils.PyDataset` over dict inputs, for label-free `fit(x)`."""

import math

import keras
import numpy as np

from keras_mm.api_export import keras_mm_export


@keras_mm_export("keras_mm.data.MultimodalPyDataset")
class MultimodalPyDataset(keras.utils.PyDataset):
    """Batches of dict inputs (no labels by default), shuffled per epoch from a seed.

    Each batch is a dict with the keys of `inputs` (`"images"`, `"token_ids"`,
    `"padding_mask"`, `"audio"`, ...), so label-free models (contrastive, CCA,
    reconstruction) train with `model.fit(dataset)`. The order of epoch `e` is a
    permutation drawn from `numpy.random.default_rng([seed, e])`: it depends only
    on the seed and the epoch number, so a resumed run (`set_epoch(initial_epoch)`)
    sees the same batches as an uninterrupted one.

    With `image_index`, `inputs["images"]` holds each image once and row `i` of the
    other arrays pairs with image `image_index[i]` (the layout the caption readers
    return: several captions per image), so images are not copied in memory.

    Args:
        inputs: dict of str to arrays with the same first dimension N (except
            `"images"` when `image_index` is given).
        batch_size: int.
        shuffle: bool. Shuffle every epoch; False keeps the stored order.
        seed: int. Seed of the shuffle.
        image_index: optional `(N,)` int array into `inputs["images"]`.
        labels: optional `(N,)` array. If given, batches are `(inputs, labels)`
            tuples, e.g. class ids that a contrastive loss uses as group ids
            (captions of one class are positives of each other).
        drop_remainder: bool. Drop the last, smaller batch.
        **kwargs: `keras.utils.PyDataset` arguments (`workers`,
            `use_multiprocessing`, `max_queue_size`).

    Example:

    >>> import numpy as np
    >>> ds = MultimodalPyDataset(
    ...     {"images": np.zeros((10, 4, 4, 3)), "token_ids": np.zeros((10, 5))},
    ...     batch_size=4)
    >>> len(ds), sorted(ds[0]), ds[2]["images"].shape
    (3, ['images', 'token_ids'], (2, 4, 4, 3))
    """

    def __init__(
        self,
        inputs,
        batch_size=32,
        shuffle=True,
        seed=0,
        image_index=None,
        labels=None,
        drop_remainder=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(inputs, dict) or not inputs:
            raise ValueError(
                "`inputs` must be a non-empty dict of arrays. Received: inputs of "
                f"type {type(inputs).__name__}"
            )
        if (
            not isinstance(batch_size, int)
            or isinstance(batch_size, bool)
            or (batch_size < 1)
        ):
            raise ValueError(
                f"`batch_size` must be a positive integer. Received: {batch_size!r}"
            )
        self.inputs = {k: np.asarray(v) for k, v in inputs.items()}
        self.image_index = None
        if image_index is not None:
            if "images" not in self.inputs:
                raise ValueError(
                    "`image_index` needs an 'images' entry in `inputs`. Received "
                    f"keys: {sorted(self.inputs)}"
                )
            index = np.asarray(image_index)
            num_images = len(self.inputs["images"])
            if (
                index.ndim != 1
                or not np.issubdtype(index.dtype, np.integer)
                or (index.size and (index.min() < 0 or index.max() >= num_images))
            ):
                raise ValueError(
                    "`image_index` must be a 1-D integer array with values in "
                    f"[0, {num_images}). Received: shape={index.shape}, "
                    f"dtype={index.dtype}"
                )
            self.image_index = index
        sizes = {
            k: len(v)
            for k, v in self.inputs.items()
            if not (k == "images" and self.image_index is not None)
        }
        if self.image_index is not None:
            sizes["image_index"] = len(self.image_index)
        self.labels = None if labels is None else np.asarray(labels)
        if self.labels is not None:
            sizes["labels"] = len(self.labels)
        if len(set(sizes.values())) != 1:
            raise ValueError(
                "Every array in `inputs` must have the same first dimension. "
                f"Received: {sizes}"
            )
        self.num_samples = next(iter(sizes.values()))
        if self.num_samples == 0:
            raise ValueError("`inputs` holds no samples.")
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.drop_remainder = bool(drop_remainder)
        if self.drop_remainder and self.num_samples < batch_size:
            raise ValueError(
                f"With `drop_remainder=True`, `batch_size` ({batch_size}) must not "
                f"exceed the number of samples ({self.num_samples})."
            )
        self.set_epoch(0)

    def set_epoch(self, epoch):
        """Make the next epoch use the order of epoch `epoch`.

        `fit(..., initial_epoch=k)` on a fresh dataset needs `set_epoch(k)` first
        to see the batches an uninterrupted run sees in epoch `k`.
        """
        if not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"`epoch` must be an integer >= 0. Received: {epoch!r}")
        self._next_epoch = int(epoch)
        self._use_epoch(self._next_epoch)

    def _use_epoch(self, epoch):
        self.epoch = epoch
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            self._order = rng.permutation(self.num_samples)
        else:
            self._order = np.arange(self.num_samples)

    @property
    def num_batches(self):
        if self.drop_remainder:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __len__(self):
        return self.num_batches

    def __getitem__(self, index):
        if not 0 <= index < self.num_batches:
            raise IndexError(
                f"Batch index {index} out of range [0, {self.num_batches})"
            )
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        batch = {}
        for key, value in self.inputs.items():
            if key == "images" and self.image_index is not None:
                batch[key] = value[self.image_index[rows]]
            else:
                batch[key] = value[rows]
        if self.labels is not None:
            return batch, self.labels[rows]
        return batch

    def on_epoch_begin(self):
        # Keras calls `on_epoch_begin` once per epoch (and `on_epoch_end` once more
        # before the first epoch), so epochs are counted here.
        self._use_epoch(self._next_epoch)
        self._next_epoch += 1
