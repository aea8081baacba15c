import math

import keras
import numpy as np

from keras_mm.encoders import ActionEncoder
from keras_mm.models import VLMP
from keras_mm.testing.test_case import TestCase
from tests.models.model_test_utils import (
    image_encoder,
    subset,
    synthetic_task,
    text_encoder,
)

KEYS = ("images", "token_ids", "padding_mask")


def _actions(labels):
    """A 2-D action per class: a point on a circle."""
    angle = 2 * np.pi * labels / 16.0
    return np.stack([np.cos(angle), np.sin(angle)], axis=1).astype("float32")


def _gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


class VLMPTest(TestCase):
    def test_zero_action_gradient_is_bounded(self):
        # Issue 21 item 6: a zero action was projected to the zero vector, where
        # the normalisation's gradient is 1/epsilon (bias gradients of ~6e5).
        x, _ = synthetic_task(8)
        x = subset(x, ("images", "token_ids"))
        actions = np.random.default_rng(0).normal(size=(8, 2)).astype("float32")
        actions[:3] = 0.0
        # Tiny encoders: only the action tower matters here.
        pixels = keras.Input((16, 16, 3))
        images = keras.Model(
            pixels, keras.layers.Dense(8)(keras.layers.Flatten()(pixels))
        )
        ids = keras.Input((6,), dtype="int32")
        text = keras.Model(ids, keras.layers.Embedding(24, 8)(ids))
        model = VLMP(images, text, action_dim=2, embed_dim=8, hidden_dim=16)
        w1, b1, w2, b2 = [
            keras.ops.convert_to_numpy(w) for w in model.action_projection.weights
        ]
        # NumPy oracle of the action tower before normalisation.
        p = _gelu(actions @ w1 + b1) @ w2 + b2
        norms = np.linalg.norm(p, axis=-1)
        self.assertGreater(norms.min(), 0.05)  # away from the singular point
        # With unit embeddings, the CLIP loss's gradient summed over the batch
        # has norm <= 2 * scale (rows and columns of softmax minus one-hot sum
        # to <= 2 in L1); the normalisation divides by ||p_j||; the output
        # bias gets the sum over rows: ||grad b_2|| <= 2 * w * scale / min ||p||.
        scale = float(keras.ops.convert_to_numpy(model.state_action_logits.scale))
        bound = 2.0 * model.contrastive_weight * scale / norms.min()
        lr = 0.01
        model.compile(optimizer=keras.optimizers.SGD(lr))
        model.fit(x, actions, batch_size=8, epochs=1, verbose=0)
        bias = model.action_projection.output_dense.bias
        gradient = np.linalg.norm(keras.ops.convert_to_numpy(bias) - b2) / lr
        self.assertGreater(gradient, 0.0)
        self.assertLessEqual(gradient, 1.001 * bound)
        # A few more SGD steps keep the tower's weights bounded (main: 3e4).
        model.fit(x, actions, batch_size=8, epochs=4, verbose=0)
        for w in model.action_projection.weights:
            self.assertLess(np.abs(keras.ops.convert_to_numpy(w)).max(), 10.0, w.path)

    def test_fused_embeddings_dtype_is_the_compute_dtype_on_every_backend(self):
        # Issue 21 item 9: ConcatFusion's symbolic output was float32 on torch
        # and bfloat16 on JAX/TensorFlow under mixed_bfloat16.
        keras.config.set_dtype_policy("mixed_bfloat16")
        model = VLMP(
            image_encoder(), text_encoder(), action_dim=2, embed_dim=8, hidden_dim=16
        )
        for key in ("fused_embeddings", "image_embeddings", "actions"):
            symbolic = model._outputs_struct[key].dtype
            self.assertEqual(keras.backend.standardize_dtype(symbolic), "bfloat16", key)

    def test_fit_without_labels_halves_alignment_loss(self):
        x, _ = synthetic_task(128)
        x = subset(x, KEYS)
        model = VLMP(
            image_encoder(), text_encoder(), action_dim=2, embed_dim=16, hidden_dim=32
        )
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        history = model.fit(x, batch_size=16, epochs=10, verbose=0)
        losses = history.history["loss"]
        self.assertLess(losses[-1], 0.5 * losses[0], history.history)
        out = model.predict(x, verbose=0)
        self.assertEqual(out["actions"].shape, (128, 2))

    def test_fit_with_actions_learns_policy_evaluate_predict_save(self):
        x, labels = synthetic_task(128)
        x = subset(x, KEYS)
        actions = _actions(labels)
        model = VLMP(
            image_encoder(),
            text_encoder(),
            action_dim=2,
            embed_dim=16,
            hidden_dim=32,
            action_encoder=ActionEncoder(action_dim=2, hidden_dim=16, num_layers=1),
        )
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        history = model.fit(x, actions, batch_size=16, epochs=10, verbose=0)
        for term in ("loss", "action_loss", "vla_loss"):
            values = history.history[term]
            self.assertLess(values[-1], 0.5 * values[0], (term, values))
        logs = model.evaluate(x, actions, batch_size=16, verbose=0, return_dict=True)
        self.assertLess(logs["action_loss"], 0.1)
        predicted = model.predict_actions(x)
        self.assertLess(np.mean((predicted - actions) ** 2), 0.1)
        # y as a dict works too.
        terms = model.evaluate_loss_terms(x, {"actions": actions})
        self.assertAllClose(
            terms["action_loss"],
            np.mean((predicted - actions) ** 2),
            atol=1e-4,
            rtol=1e-4,
        )
        config = model.get_config()
        self.assertEqual(VLMP.from_config(config).get_config(), config)
        self.run_model_saving_test(model, x)

    def test_discrete_actions(self):
        x, labels = synthetic_task(128)
        x = subset(x, KEYS)
        model = VLMP(
            image_encoder(),
            text_encoder(),
            action_dim=4,
            action_type="discrete",
            embed_dim=16,
            hidden_dim=32,
            fusion="gated",
        )
        actions = labels % 4
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        history = model.fit(x, actions, batch_size=16, epochs=12, verbose=0)
        values = history.history["action_loss"]
        self.assertLess(values[-1], 0.5 * values[0], values)
        out = model.predict(x, verbose=0)
        self.assertEqual(out["action_logits"].shape, (128, 4))
        self.assertEqual(model.predict_actions(x).shape, (128,))

    def test_input_errors(self):
        x, labels = synthetic_task(8)
        x = subset(x, KEYS)
        model = VLMP(image_encoder(), text_encoder(), action_dim=2, embed_dim=16)
        with self.assertRaisesRegex(ValueError, r"token_ids shape=\(2, 6\)"):
            model(dict(x, token_ids=x["token_ids"][:2]))
        with self.assertRaisesRegex(ValueError, r"missing the key\(s\) \['images'\]"):
            model(subset(x, ("token_ids", "padding_mask")))
        with self.assertRaisesRegex(ValueError, r"\(batch, 2\).*\(8, 3\)"):
            model.evaluate_loss_terms(x, np.zeros((8, 3), "float32"))
        with self.assertRaisesRegex(ValueError, "action_type"):
            VLMP(image_encoder(), text_encoder(), action_type="mixed")
