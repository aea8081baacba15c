import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_mm.layers import ContrastiveLogits
from keras_mm.losses import CLIPLoss, SigLIPLoss
from keras_mm.testing import TestCase


class TextBatch(int):
    """The text batch size in an expected output shape `(B_image, B_text)`.

    A symbolic call leaves `B_text` unknown (None) while the eager call knows
    it; this equals None or exactly its own value, nothing else.
    """

    def __eq__(self, other):
        return other is None or int(self) == other

    def __hash__(self):
        return int.__hash__(self)


def oracle(x, y, log_scale, max_scale=100.0, bias=None):
    scale = math.exp(log_scale)
    if max_scale is not None:
        scale = min(scale, max_scale)
    z = scale * np.asarray(x, "float64") @ np.asarray(y, "float64").T
    return z if bias is None else z + bias


def embeddings(seed, b, d=8):
    x = np.random.default_rng(seed).normal(size=(b, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")


class ContrastiveLogitsTest(TestCase):
    def test_layer_contract(self):
        data = {
            "image_embeddings": embeddings(0, 4),
            "text_embeddings": embeddings(1, 3),
        }
        for kwargs, num_weights in (
            ({}, 1),
            ({"init_scale": 10.0, "init_bias": -10.0}, 2),
        ):
            self.run_layer_test(
                ContrastiveLogits,
                kwargs,
                data,
                expected_output_shape=(4, TextBatch(3)),
                expected_num_trainable_weights=num_weights,
                # The output is (B_image, B_text) float32 by design: the shared
                # fit step (target shaped like one input) and the
                # mixed_bfloat16 output check do not apply; both are tested below.
                run_training_check=False,
                run_mixed_precision_check=False,
            )

    def test_initial_values(self):
        head = ContrastiveLogits()
        x, y = embeddings(2, 3), embeddings(3, 5)
        z = head(x, y)
        self.assertAllClose(head.log_scale, math.log(1 / 0.07), atol=1e-6)
        self.assertIsNone(head.bias)
        self.assertAllClose(z, oracle(x, y, math.log(1 / 0.07)), atol=1e-5)
        siglip = ContrastiveLogits(init_scale=10.0, init_bias=-10.0)
        z = siglip(x, y)
        self.assertAllClose(siglip.scale, 10.0, atol=1e-5)
        self.assertAllClose(siglip.bias, -10.0)
        self.assertAllClose(z, oracle(x, y, math.log(10.0), bias=-10.0), atol=1e-5)

    def test_matches_oracle_and_clamps_scale(self):
        x, y = embeddings(4, 4), embeddings(5, 6)
        head = ContrastiveLogits(init_bias=0.0)
        head(x, y)
        for log_scale in (1.5, math.log(100.0) + 0.5, 7.0):
            head.log_scale.assign(log_scale)
            head.bias.assign(-2.5)
            expected = oracle(x, y, log_scale, bias=-2.5)
            self.assertAllClose(head(x, y), expected, atol=1e-4, rtol=1e-5)
        self.assertAllClose(head.scale, 100.0)
        free = ContrastiveLogits(max_scale=None)
        free(x, y)
        free.log_scale.assign(7.0)
        self.assertAllClose(free(x, y), oracle(x, y, 7.0, None), rtol=1e-5, atol=1e-3)

    def test_mixed_precision_keeps_float32_logits(self):
        x, y = embeddings(6, 4), embeddings(7, 4)
        head = ContrastiveLogits(init_bias=-10.0, dtype="mixed_bfloat16")
        z = head(ops.cast(x, "bfloat16"), ops.cast(y, "bfloat16"))
        self.assertEqual(keras.backend.standardize_dtype(z.dtype), "float32")
        for w in head.weights:
            self.assertEqual(keras.backend.standardize_dtype(w.dtype), "float32")
        xb = ops.convert_to_numpy(ops.cast(ops.cast(x, "bfloat16"), "float32"))
        yb = ops.convert_to_numpy(ops.cast(ops.cast(y, "bfloat16"), "float32"))
        # The scale is not rounded to bfloat16 (exp(2.656) would be 14.24).
        expected = oracle(xb, yb, math.log(1 / 0.07), bias=-10.0)
        self.assertAllClose(z, expected, atol=1e-4, rtol=1e-5)

    def test_trains_clip_and_siglip_in_compute_loss(self):
        rng = np.random.default_rng(8)
        images = rng.normal(size=(64, 10)).astype("float32")
        texts = (images @ rng.normal(size=(10, 6))).astype("float32")

        class DualEncoder(keras.Model):
            def __init__(self, loss_fn, **head_kwargs):
                super().__init__()
                self.image_tower = keras.layers.Dense(8)
                self.text_tower = keras.layers.Dense(8)
                self.head = ContrastiveLogits(**head_kwargs)
                self.loss_fn = loss_fn

            def call(self, inputs):
                x = ops.normalize(self.image_tower(inputs[0]), axis=-1)
                y = ops.normalize(self.text_tower(inputs[1]), axis=-1)
                return self.head(x, y)

            def compute_loss(
                self, x=None, y=None, y_pred=None, sample_weight=None, training=True
            ):
                return self.loss_fn(None, y_pred)

        for loss_fn, kwargs in (
            (CLIPLoss(), {}),
            (SigLIPLoss(), {"init_scale": 10.0, "init_bias": -10.0}),
        ):
            model = DualEncoder(loss_fn, **kwargs)
            model.compile(optimizer=keras.optimizers.Adam(0.05))
            history = model.fit(
                [images, texts], batch_size=16, epochs=3, shuffle=False, verbose=0
            )
            losses = history.history["loss"]
            self.assertTrue(np.all(np.isfinite(losses)), losses)
            self.assertLess(losses[-1], losses[0])
            self.assertNotAlmostEqual(
                float(ops.convert_to_numpy(model.head.log_scale)),
                math.log(kwargs.get("init_scale", 1 / 0.07)),
                places=4,
            )

    def test_saving_round_trip(self):
        image = keras.Input((8,), name="image_embeddings")
        text = keras.Input((8,), name="text_embeddings")
        head = ContrastiveLogits(init_scale=10.0, init_bias=-10.0)
        model = keras.Model([image, text], head(image, text))
        head.log_scale.assign(1.25)
        head.bias.assign(-3.0)
        data = [embeddings(9, 5), embeddings(10, 5)]
        restored = self.run_model_saving_test(model, data)
        self.assertAllClose(
            restored.predict(data, verbose=0), oracle(*data, 1.25, bias=-3.0), atol=1e-5
        )

    def test_bad_inputs(self):
        head = ContrastiveLogits()
        with pytest.raises(ValueError, match=r"same.*embedding size.*Received: image_"):
            head(np.ones((2, 8)), np.ones((2, 7)))
        with pytest.raises(ValueError, match=r"rank 2.*Received: image_embeddings sh"):
            ContrastiveLogits()(np.ones((2, 3, 8)), np.ones((2, 8)))
        with pytest.raises(ValueError, match=r"embedding size.*Received"):
            ContrastiveLogits()(keras.Input((8,)), keras.Input((4,)))
        for kwargs, name in (
            ({"init_scale": 0.0}, "init_scale"),
            ({"init_scale": "x"}, "init_scale"),
            ({"max_scale": -1.0}, "max_scale"),
            ({"init_bias": float("nan")}, "init_bias"),
        ):
            with pytest.raises(ValueError, match=f"`{name}`.*Received: {name}="):
                ContrastiveLogits(**kwargs)
