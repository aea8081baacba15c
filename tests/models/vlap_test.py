import keras
import numpy as np

from keras_mm.layers import AttentionFusion, ConcatFusion, GatedFusion
from keras_mm.models import VLAP
from keras_mm.testing.test_case import TestCase
from tests.models.model_test_utils import (
    audio_encoder,
    image_encoder,
    synthetic_task,
    text_encoder,
)


def _vlap(**kwargs):
    return VLAP(
        image_encoder(), text_encoder(), audio_encoder(), embed_dim=16, **kwargs
    )


class VLAPTest(TestCase):
    def test_fit_without_labels_halves_loss_evaluate_predict_save(self):
        x, _ = synthetic_task(128)
        model = VLAP(
            image_encoder(),
            text_encoder(),
            audio_encoder(),
            embed_dim=16,
            fusion="attention",
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        history = model.fit(x, batch_size=16, epochs=10, verbose=0)
        losses = history.history["loss"]
        self.assertLess(losses[-1], 0.5 * losses[0], history.history)
        for term in ("align_loss", "fusion_loss"):
            self.assertLess(history.history[term][-1], history.history[term][0])
        logs = model.evaluate(x, batch_size=16, verbose=0, return_dict=True)
        self.assertEqual(sorted(logs), ["align_loss", "fusion_loss", "loss"])
        out = model.predict(x, batch_size=32, verbose=0)
        for key in ("image", "text", "audio", "fused"):
            norms = np.linalg.norm(out[f"{key}_embeddings"], axis=-1)
            self.assertAllClose(norms, np.ones(128), atol=1e-5)
        # Audio retrieves the matching caption's class better than chance.
        sim = out["audio_embeddings"] @ out["text_embeddings"].T
        top = sim.argmax(-1)
        self.assertGreater(np.mean(x["token_ids"][top, 0] == x["token_ids"][:, 0]), 0.5)
        self.run_model_saving_test(model, x)

    def test_fusion_choices_config_round_trip(self):
        x, _ = synthetic_task(8)
        expected = {
            "attention": AttentionFusion,
            "gated": GatedFusion,
            "concat": ConcatFusion,
        }
        for fusion, cls in expected.items():
            model = _vlap(fusion=fusion)
            self.assertIsInstance(model.fusion_layer, cls)
            out = model(x)
            self.assertEqual(tuple(out["fused_embeddings"].shape), (8, 16))
            config = model.get_config()
            self.assertEqual(VLAP.from_config(config).get_config(), config)
        # A fusion layer instance is serialized with the model.
        model = _vlap(fusion=GatedFusion(name="my_fusion"))
        revived = VLAP.from_config(model.get_config())
        self.assertIsInstance(revived.fusion_layer, GatedFusion)
        self.assertEqual(revived.fusion_layer.name, "my_fusion")
        with self.assertRaisesRegex(ValueError, "`fusion` must be one of"):
            _vlap(fusion="sum")

    def test_input_errors_name_key_and_shapes(self):
        x, _ = synthetic_task(8)
        model = _vlap()
        with self.assertRaisesRegex(ValueError, r"audio shape=\(4, 256\)"):
            model(dict(x, audio=x["audio"][:4]))
        with self.assertRaisesRegex(ValueError, r"missing the key\(s\) \['audio'\]"):
            model.predict({k: v for k, v in x.items() if k != "audio"}, verbose=0)
        with self.assertRaisesRegex(ValueError, r"inputs\['audio'\] must have rank 2"):
            model(dict(x, audio=x["audio"][:, :, None]))
