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


class VLMPTest(TestCase):
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
