import keras
import numpy as np
import pytest

from keras_mm.encoders import AudioEncoder
from keras_mm.testing import TestCase
from tests.encoders.encoder_checks import (
    assert_nested_round_trip,
    check_contract,
    forward,
)

TINY = dict(hidden_dim=8, num_layers=1, num_heads=2, intermediate_dim=16)


def waveforms(batch, samples, seed=0):
    """Sines of random pitch and loudness plus a little noise, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000.0
    freq = rng.uniform(200, 2000, size=(batch, 1))
    amp = rng.uniform(0.05, 0.9, size=(batch, 1))
    x = amp * np.sin(2 * np.pi * freq * t) + 0.01 * rng.normal(size=(batch, samples))
    return x.astype("float32")


class AudioEncoderTest(TestCase):
    def test_layer_contract(self):
        check_contract(
            self,
            AudioEncoder,
            dict(TINY, num_samples=800),
            waveforms(2, 800),
            expected_shape=(2, 8),
            # 2 convs (4), input projection (2), 1 block (16), final LN (2)
            expected_num_trainable_weights=24,
        )

    def test_sequence_length_and_variable_length(self):
        encoder = AudioEncoder(**TINY, output_mode="both")
        for samples in (800, 1760):
            out = forward(encoder, waveforms(2, samples))
            frames = samples // 160 + 1
            for _ in range(2):  # two stride-2 convolutions, "same" padding
                frames = -(-frames // 2)
            self.assertEqual(tuple(out["sequence_output"].shape), (2, frames, 8))
            self.assertEqual(tuple(out["pooled_output"].shape), (2, 8))
        sequence = out["sequence_output"]
        self.assertAllClose(out["pooled_output"], sequence.mean(1), atol=1e-5)

    def test_examples_do_not_depend_on_the_batch(self):
        # keras.layers.MelSpectrogram(power_to_db=True) floors the decibels at the
        # batch maximum - top_db; the encoder's per-example floor must not.
        encoder = AudioEncoder(**TINY)
        batch = waveforms(3, 1600, seed=1)
        batch[1] *= 1e-4  # a quiet clip next to loud ones
        together = forward(encoder, batch)
        for i in range(3):
            self.assertAllClose(
                together[i], forward(encoder, batch[i : i + 1])[0], atol=1e-5
            )
        # Louder and quieter clips give different features (the log-mel keeps
        # the level), yet no NaN even for silence.
        silence = forward(encoder, np.zeros((1, 1600), "float32"))
        self.assertTrue(np.all(np.isfinite(silence)))
        self.assertGreater(np.abs(together[0] - together[1]).max(), 1e-3)

    def test_nested_encoders_and_saving(self):
        assert_nested_round_trip(
            self, lambda: AudioEncoder(**TINY, num_samples=800), waveforms(2, 800)
        )

    def test_bad_inputs(self):
        encoder = AudioEncoder(**TINY)
        for bad in (np.ones((2, 100)), np.ones((2, 800, 1)), np.ones((800,))):
            with pytest.raises(ValueError, match=r"audio.*samples >= 201.*Received"):
                encoder(bad)
        fixed = AudioEncoder(**TINY, num_samples=800)
        with pytest.raises(ValueError, match=r"\(batch, 800\).*shape=\(2, 900\)"):
            fixed(np.ones((2, 900)))
        with pytest.raises(ValueError, match="audio"):
            fixed(keras.Input((900,)))
        with pytest.raises(ValueError, match="key 'audio'"):
            encoder({"waveform": np.ones((2, 800))})
        bad_args = [
            (dict(num_samples=100), "num_samples"),
            (dict(pooling="cls"), "pooling"),
            (dict(num_mel_bins=0), "num_mel_bins"),
            (dict(hidden_dim=6, num_heads=4), "divisible by `num_heads`"),
            (dict(layer_norm_epsilon=0.0), "layer_norm_epsilon"),
        ]
        for kwargs, words in bad_args:
            with pytest.raises(ValueError, match=words):
                AudioEncoder(**dict(TINY, **kwargs))
