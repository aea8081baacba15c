import keras
import numpy as np
import pytest
from keras import ops

from keras_mm.data import MultimodalPyDataset
from keras_mm.testing import TestCase


def _inputs(n=10):
    return {
        "images": np.arange(n * 2, dtype="float32").reshape(n, 1, 1, 2),
        "token_ids": np.arange(n * 3, dtype="int32").reshape(n, 3),
        "padding_mask": np.ones((n, 3), dtype=bool),
    }


def test_batches_cover_every_sample_once_per_epoch():
    ds = MultimodalPyDataset(_inputs(), batch_size=4, seed=1)
    assert len(ds) == ds.num_batches == 3
    rows = np.concatenate([ds[i]["token_ids"][:, 0] // 3 for i in range(len(ds))])
    assert sorted(rows.tolist()) == list(range(10))
    assert rows.tolist() != list(range(10))  # shuffled
    for i in range(len(ds)):  # keys stay paired
        batch = ds[i]
        np.testing.assert_array_equal(
            batch["images"][:, 0, 0, 0] / 2, batch["token_ids"][:, 0] / 3
        )
    with pytest.raises(IndexError):
        ds[3]


def test_order_depends_only_on_seed_and_epoch():
    a = MultimodalPyDataset(_inputs(), batch_size=10, seed=7)
    b = MultimodalPyDataset(_inputs(), batch_size=10, seed=7)
    first = a[0]["token_ids"].copy()
    a.on_epoch_begin()  # epoch 0
    np.testing.assert_array_equal(a[0]["token_ids"], first)
    a.on_epoch_end()
    a.on_epoch_begin()  # epoch 1
    second = a[0]["token_ids"].copy()
    assert not np.array_equal(first, second)
    b.set_epoch(1)  # a resumed run
    np.testing.assert_array_equal(b[0]["token_ids"], second)
    c = MultimodalPyDataset(_inputs(), batch_size=10, seed=8)
    assert not np.array_equal(c[0]["token_ids"], first)
    d = MultimodalPyDataset(_inputs(), batch_size=4, shuffle=False)
    np.testing.assert_array_equal(d[1]["token_ids"][:, 0], [12, 15, 18, 21])


def test_image_index_gathers_shared_images_and_drop_remainder():
    inputs = _inputs(3)
    inputs["token_ids"] = np.arange(7 * 2).reshape(7, 2)
    inputs["padding_mask"] = np.ones((7, 2), dtype=bool)
    index = np.array([0, 0, 1, 1, 1, 2, 2])
    ds = MultimodalPyDataset(
        inputs, batch_size=3, image_index=index, drop_remainder=True, seed=0
    )
    assert len(ds) == 2
    for i in range(len(ds)):
        batch = ds[i]
        rows = batch["token_ids"][:, 0] // 2
        np.testing.assert_array_equal(batch["images"], inputs["images"][index[rows]])


def test_labels_make_x_y_batches():
    labels = np.arange(10) * 10
    ds = MultimodalPyDataset(_inputs(), batch_size=4, seed=2, labels=labels)
    x, y = ds[1]
    np.testing.assert_array_equal(y, x["token_ids"][:, 0] // 3 * 10)
    with pytest.raises(ValueError, match="labels"):
        MultimodalPyDataset(_inputs(), labels=np.arange(3))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"inputs": []}, "inputs"),
        ({"batch_size": 0}, "batch_size"),
        ({"image_index": np.array([0, 5])}, "image_index"),
        ({"image_index": np.array([0.0, 1.0])}, "image_index"),
        ({"drop_remainder": True, "batch_size": 11}, "drop_remainder"),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    args = {"inputs": _inputs(), "batch_size": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        MultimodalPyDataset(**args)
    with pytest.raises(ValueError, match="same first dimension"):
        MultimodalPyDataset({"images": np.zeros((3, 2)), "token_ids": np.zeros((4, 2))})


class LabelFreeModel(keras.Model):
    """A label-free model: the loss lives in `compute_loss` (fit(x) only)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1)

    def call(self, inputs):
        images = ops.reshape(inputs["images"], (-1, 2))
        tokens = ops.cast(inputs["token_ids"][:, :1], "float32")
        return self.dense(ops.concatenate([images, tokens], axis=-1) / 30.0)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, **kw):
        return ops.mean(ops.square(y_pred - 1.0))


class FitTest(TestCase):
    def test_fit_on_dict_inputs_without_labels(self):
        ds = MultimodalPyDataset(_inputs(12), batch_size=4, seed=0)
        model = LabelFreeModel()
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        history = model.fit(ds, epochs=3, verbose=0)
        losses = history.history["loss"]
        assert len(losses) == 3 and losses[-1] < losses[0]
