import keras
import numpy as np

from keras_mm.models import MultimodalAutoencoder
from keras_mm.models.autoencoder.autoencoder_layers import ModalityDropout
from keras_mm.testing.test_case import TestCase
from tests.models.model_test_utils import (
    audio_encoder,
    image_encoder,
    light_audio_encoder,
    light_image_encoder,
    subset,
    synthetic_task,
)

KEYS = ("images", "audio")


def _autoencoder(**kwargs):
    kwargs.setdefault("seed", 2)
    return MultimodalAutoencoder(
        {"images": image_encoder(), "audio": audio_encoder()},
        code_dim=16,
        decoder_hidden_dim=64,
        **kwargs,
    )


class MultimodalAutoencoderTest(TestCase):
    def test_fit_halves_loss_cross_modal_reconstruction_save(self):
        x, _ = synthetic_task(128)
        x = subset(x, KEYS)
        model = MultimodalAutoencoder(
            {"images": light_image_encoder(), "audio": light_audio_encoder()},
            code_dim=16,
            decoder_hidden_dim=64,
            seed=2,
        )
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        history = model.fit(x, batch_size=16, epochs=20, verbose=0)
        losses = history.history["loss"]
        self.assertLess(losses[-1], 0.5 * losses[0], history.history)
        self.assertGreater(history.history["cross_modal_loss"][-1], 0.0)
        logs = model.evaluate(x, batch_size=16, verbose=0, return_dict=True)
        self.assertAllClose(logs["cross_modal_loss"], 0.0)  # nothing hidden at eval
        out = model.predict(x, verbose=0)
        self.assertEqual(out["images_reconstruction"].shape, (128, 16, 16, 3))
        self.assertEqual(out["code"].shape, (128, 16))
        # The seed's equation: loss = sum over modalities of the mean squared error.
        expected = sum(np.mean((out[f"{k}_reconstruction"] - x[k]) ** 2) for k in KEYS)
        self.assertAllClose(logs["loss"], expected, atol=1e-4, rtol=1e-4)
        # Cross-modal: audio from images alone beats predicting the mean waveform.
        from_images = model.reconstruct({"images": x["images"]})["audio_reconstruction"]
        baseline = np.mean((x["audio"] - x["audio"].mean(0)) ** 2)
        self.assertLess(np.mean((from_images - x["audio"]) ** 2), 0.8 * baseline)
        config = model.get_config()
        self.assertEqual(MultimodalAutoencoder.from_config(config).get_config(), config)
        self.run_model_saving_test(model, x)

    def test_modality_dropout_hides_at_most_one_present_modality(self):
        layer = ModalityDropout(rate=1.0, seed=0)
        mask = np.array([[1, 1], [1, 0], [0, 1], [1, 1]] * 8, "float32")
        out = keras.ops.convert_to_numpy(layer(mask, training=True))
        self.assertTrue(np.all(out <= mask))
        self.assertTrue(np.all(out.sum(-1) >= 1))  # never hides the last one
        both = mask.sum(-1) == 2
        self.assertTrue(np.all(out[both].sum(-1) == 1))  # rate 1: one hidden
        self.assertAllClose(layer(mask, training=False), mask)

    def test_input_errors_and_missing_modality(self):
        x, _ = synthetic_task(8)
        x = subset(x, KEYS)
        model = _autoencoder(fusion="attention")
        with self.assertRaisesRegex(ValueError, r"audio shape=\(3, 256\)"):
            model(dict(x, audio=x["audio"][:3]))
        with self.assertRaisesRegex(ValueError, r"missing the key\(s\) \['audio'\]"):
            model({"images": x["images"]})
        with self.assertRaisesRegex(ValueError, "rank 4"):
            model(dict(x, images=x["images"][0]))
        # With the mask, the masked modality's input does not matter.
        mask = np.tile([[1.0, 0.0]], (8, 1)).astype("float32")
        a = model(dict(x, modality_mask=mask))
        b = model(dict(x, audio=np.zeros_like(x["audio"]), modality_mask=mask))
        self.assertAllClose(a["code"], b["code"], atol=1e-6)
        filled = model.reconstruct({"images": x["images"]})
        self.assertAllClose(filled["code"], a["code"], atol=1e-5)
