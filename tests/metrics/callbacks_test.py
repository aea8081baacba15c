import keras
import numpy as np
import pytest
from keras import ops

from keras_mm.metrics import (
    RetrievalCallback,
    ZeroShotCallback,
    retrieval_metrics,
    zero_shot_accuracy,
    zero_shot_classifier,
)
from keras_mm.testing import TestCase

NUM_CLASSES, DIM, LENGTH = 4, 6, 5


class TwoTowerModel(keras.Model):
    """A stand-in for CLIP: `encode_image` / `encode_text` give unit embeddings."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.image_proj = keras.layers.Dense(DIM)
        self.embedding = keras.layers.Embedding(10, DIM)

    def build(self, input_shape):
        self.image_proj.build((None, 4 * 4 * 3))
        self.embedding.build((None, LENGTH))

    def call(self, inputs):
        return self.encode_image(inputs["images"]) + self.encode_text(inputs)

    def encode_image(self, images):
        flat = ops.reshape(ops.convert_to_tensor(images), (-1, 4 * 4 * 3))
        return ops.normalize(self.image_proj(flat), axis=-1)

    def encode_text(self, text):
        mask = ops.cast(ops.convert_to_tensor(text["padding_mask"]), "float32")
        x = self.embedding(ops.convert_to_tensor(text["token_ids"]))
        x = ops.sum(x * mask[..., None], axis=1)
        return ops.normalize(x, axis=-1)


def _data(seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(size=(12, 4, 4, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, size=12).astype("int32")
    prompt_ids = rng.integers(1, 10, size=(NUM_CLASSES, 2, LENGTH)).astype("int32")
    prompt_mask = np.ones_like(prompt_ids, dtype=bool)
    prompt_mask[:, :, -1] = False
    caption_ids = rng.integers(1, 10, size=(24, LENGTH)).astype("int32")
    index = np.repeat(np.arange(12), 2)
    return (
        images,
        labels,
        {"token_ids": prompt_ids, "padding_mask": prompt_mask},
        (
            {"token_ids": caption_ids, "padding_mask": np.ones_like(caption_ids, bool)},
            index,
        ),
    )


class CallbacksTest(TestCase):
    def test_logs_match_direct_metric_computation_during_fit(self):
        images, labels, prompts, (captions, index) = _data()
        model = TwoTowerModel()
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        zero_shot = ZeroShotCallback(images, labels, prompts, ks=(1, 2))
        retrieval = RetrievalCallback(images, captions, index, ks=(1, 5))
        seen = {}

        class Snapshot(keras.callbacks.Callback):
            """Recomputes the metrics from the model's weights at epoch end."""

            def on_epoch_end(self, epoch, logs=None):
                img = ops.convert_to_numpy(model.encode_image(images))
                flat = {k: v.reshape(-1, LENGTH) for k, v in prompts.items()}
                txt = ops.convert_to_numpy(model.encode_text(flat))
                classes = zero_shot_classifier(txt.reshape(NUM_CLASSES, 2, DIM))
                cap = ops.convert_to_numpy(model.encode_text(captions))
                seen[epoch] = (
                    zero_shot_accuracy(img @ classes.T, labels, (1, 2)),
                    retrieval_metrics(img @ cap.T, index, (1, 5)),
                    dict(logs),
                    img,
                )

        train = {"images": images, **{k: v[::2] for k, v in captions.items()}}
        history = model.fit(
            train,
            np.ones((12, DIM), "float32"),
            epochs=2,
            batch_size=4,
            verbose=0,
            callbacks=[zero_shot, retrieval, Snapshot()],
        )
        for key in (
            "val_zero_shot_top1",
            "val_zero_shot_top2",
            "val_image_to_text_r1",
            "val_text_to_image_r5",
            "val_image_to_text_mean_rank",
            "val_text_to_image_median_rank",
        ):
            assert len(history.history[key]) == 2, key
        for epoch, (zs, rt, logs, _) in seen.items():
            assert logs["val_zero_shot_top1"] == pytest.approx(zs["top1"])
            assert logs["val_zero_shot_top2"] == pytest.approx(zs["top2"])
            for k, v in rt.items():
                assert logs[f"val_{k}"] == pytest.approx(v), k
            assert "loss" in logs
        # Training moved the embeddings between the two evaluations.
        assert not np.allclose(seen[0][3], seen[1][3])

    def test_perfect_model_scores_one(self):
        class Perfect(keras.Model):
            # Image n is class labels[n]; prompt token 1 + c names class c.
            def encode_image(self, images):
                return np.eye(NUM_CLASSES)[np.asarray(images)[:, 0, 0, 0].astype(int)]

            def encode_text(self, text):
                return np.eye(NUM_CLASSES)[np.asarray(text["token_ids"])[:, 0] - 1]

        labels = np.array([0, 1, 2, 3, 2, 1])
        images = np.zeros((6, 4, 4, 3), "float32") + labels[:, None, None, None]
        ids = np.repeat(np.arange(1, NUM_CLASSES + 1)[:, None, None], 3, 1)
        ids = np.repeat(ids, LENGTH, 2)
        prompts = {"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}
        callback = ZeroShotCallback(images, labels, prompts, batch_size=4)
        callback.set_model(Perfect())
        logs = {}
        callback.on_epoch_end(0, logs)
        assert logs == {"val_zero_shot_top1": 1.0, "val_zero_shot_top5": 1.0}
        # Retrieval over the 4 distinct images, one caption each.
        captions = {
            "token_ids": ids[:, 0],
            "padding_mask": prompts["padding_mask"][:, 0],
        }
        retrieval = RetrievalCallback(
            images[:4], captions, ks=(1,), frequency=2, batch_size=3
        )
        retrieval.set_model(Perfect())
        logs = {}
        retrieval.on_epoch_end(0, logs)
        assert logs == {}  # frequency=2: not on the first epoch
        retrieval.on_epoch_end(1, logs)
        assert (
            logs["val_image_to_text_r1"] == 1.0 and logs["val_text_to_image_r1"] == 1.0
        )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: ZeroShotCallback(d[0], d[1][:3], d[2]), "labels"),
        (
            lambda d: ZeroShotCallback(d[0], d[1], {"ids": d[2]["token_ids"]}),
            "token_ids",
        ),
        (lambda d: ZeroShotCallback(d[0], d[1], d[2], frequency=0), "frequency"),
        (
            lambda d: ZeroShotCallback(d[0], d[1], d[2]["token_ids"][None]),
            "class_prompts",
        ),
        (lambda d: RetrievalCallback(d[0], d[3][0]), "one caption per image"),
        (
            lambda d: RetrievalCallback(d[0], d[3][0], d[3][1][:5]),
            "caption_image_index",
        ),
        (lambda d: RetrievalCallback(d[0], d[3][0], d[3][1], ks=(0,)), "ks"),
    ],
)
def test_rejects_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make(_data())
