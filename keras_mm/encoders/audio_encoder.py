import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.encoders.encoder_utils import (
    OUTPUT_MODES,
    BaseEncoder,
    SequencePooling,
    check_choice,
    check_heads,
    check_int,
    check_positive_float,
    check_rate,
    outputs_for,
    resolve_activation,
    shape_matches,
    transformer_blocks,
    unique_name,
)


class LogMel(keras.layers.Layer):
    """Per-example decibels of a `(batch, mels, frames)` power mel spectrogram.

    `0.1 * max(10 log10(max(S, 1e-10)), max_example - top_db)`, transposed to
    `(batch, frames, mels)`, in float32. Unlike `MelSpectrogram(power_to_db=True)`,
    whose `top_db` floor uses the maximum over the whole batch, each example's
    features depend on that example only.
    """

    def __init__(self, top_db=80.0, **kwargs):
        super().__init__(**kwargs)
        self.top_db = float(top_db)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        db = 10.0 * ops.log10(ops.maximum(x, 1e-10))
        floor = ops.max(db, axis=(1, 2), keepdims=True) - self.top_db
        db = ops.maximum(db, floor)
        return ops.transpose(0.1 * db, (0, 2, 1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2], input_shape[1])

    def get_config(self):
        config = super().get_config()
        config["top_db"] = self.top_db
        return config


@keras_mm_export("keras_mm.encoders.AudioEncoder")
class AudioEncoder(BaseEncoder):
    """A small audio encoder: waveform -> log-mel -> conv stem -> transformer.

    Computes a power mel spectrogram with `keras.layers.MelSpectrogram` (in
    float32 whatever the dtype policy), takes per-example decibels (scaled by 0.1,
    floored `top_db` below the example's maximum), downsamples time with
    `num_conv_layers` strided `Conv1D` layers (kernel 3, stride 2, GELU), adds
    sinusoidal positions (keras-hub's `SinePositionEncoding`, so any length
    works), runs `num_layers` pre-LayerNorm transformer blocks and a final
    LayerNorm, and pools over time. The audio tower of the seed's VLAP model
    (sections 3.1.2, 5.1.2), in the style of the Whisper and AST encoders.

    Args:
        sampling_rate: int. Sample rate of the waveforms, in Hz.
        num_mel_bins: int. Number of mel bands.
        fft_length: int. FFT size (and window length) of the STFT.
        sequence_stride: int. Hop between STFT frames, in samples.
        hidden_dim: int. Token width; divisible by `num_heads`.
        num_conv_layers: int. Strided convolutions (each halves the frames; >= 0).
        num_layers: int. Number of transformer blocks (>= 0).
        num_heads: int. Attention heads per block.
        intermediate_dim: int. Width of the blocks' feed-forward layer.
        dropout: float in [0, 1). Dropout in the blocks and after the stem.
        pooling: `"mean"` or `"max"` over time.
        output_mode: `"pooled"`, `"sequence"` or `"both"` (see Returns).
        num_samples: int or None. Fixed waveform length, or None for any length.
        activation: str or callable. Feed-forward activation: a Keras name,
            `"quick_gelu"` (CLIP's, much faster on CPU than `"gelu"`) or a
            function.
        layer_norm_epsilon: float. Epsilon of every LayerNormalization.
        name: str or None. Defaults to a unique `"audio_encoder"`, ...
        dtype: dtype or `keras.DTypePolicy` (e.g. `"mixed_bfloat16"`).
        **kwargs: other `keras.Model` arguments (`trainable`).

    Call arguments:
        inputs: float waveforms `(batch, samples)` (mono, roughly in [-1, 1]),
            or a dict `{"audio": waveforms}`. At least `fft_length // 2 + 1`
            samples.
        training: bool. Enables dropout.

    Returns:
        `output_mode="pooled"`: `(batch, hidden_dim)`. `"sequence"`:
        `(batch, frames, hidden_dim)` with `frames = samples // sequence_stride
        + 1` halved (rounding up) `num_conv_layers` times. `"both"`: a dict
        `{"pooled_output", "sequence_output"}`.

    Example:

    >>> import numpy as np
    >>> encoder = AudioEncoder(hidden_dim=8, num_layers=1, num_heads=2,
    ...                        intermediate_dim=16)
    >>> tuple(encoder(np.zeros((2, 1600))).shape)
    (2, 8)

    Reference:
        Radford et al., 2022 (Whisper); Gong et al., 2021 (AST); seed 3.1.2.
    """

    def __init__(
        self,
        sampling_rate=16000,
        num_mel_bins=40,
        fft_length=400,
        sequence_stride=160,
        hidden_dim=64,
        num_conv_layers=2,
        num_layers=2,
        num_heads=4,
        intermediate_dim=128,
        dropout=0.0,
        pooling="mean",
        output_mode="pooled",
        num_samples=None,
        activation="gelu",
        layer_norm_epsilon=1e-6,
        name=None,
        dtype=None,
        **kwargs,
    ):
        check_int("sampling_rate", sampling_rate)
        check_int("num_mel_bins", num_mel_bins)
        check_int("fft_length", fft_length, minimum=2)
        check_int("sequence_stride", sequence_stride)
        check_int("hidden_dim", hidden_dim)
        check_int("num_conv_layers", num_conv_layers, minimum=0)
        check_int("num_layers", num_layers, minimum=0)
        check_heads(hidden_dim, num_heads)
        check_int("intermediate_dim", intermediate_dim)
        dropout = check_rate("dropout", dropout)
        check_choice("pooling", pooling, ("mean", "max"))
        check_choice("output_mode", output_mode, OUTPUT_MODES)
        check_int(
            "num_samples", num_samples, minimum=fft_length // 2 + 1, allow_none=True
        )
        layer_norm_epsilon = check_positive_float(
            "layer_norm_epsilon", layer_norm_epsilon
        )
        activation, activation_config = resolve_activation(activation)
        name = unique_name(name, "audio_encoder")

        # === Layers and functional graph, under the encoder's name scope ===
        from keras_hub.layers import SinePositionEncoding

        with keras.name_scope(name):
            audio = keras.Input(shape=(num_samples,), name="audio")
            x = keras.layers.MelSpectrogram(
                fft_length=fft_length,
                sequence_stride=sequence_stride,
                sampling_rate=sampling_rate,
                num_mel_bins=num_mel_bins,
                power_to_db=False,
                dtype="float32",
                name="mel_spectrogram",
            )(audio)
            x = LogMel(dtype="float32", name="log_mel")(x)
            for i in range(num_conv_layers):
                x = keras.layers.Conv1D(
                    hidden_dim,
                    kernel_size=3,
                    strides=2,
                    padding="same",
                    activation="gelu",
                    dtype=dtype,
                    name=f"conv_{i}",
                )(x)
            x = keras.layers.Dense(hidden_dim, dtype=dtype, name="input_projection")(x)
            position = SinePositionEncoding(dtype=dtype, name="position_encoding")(x)
            x = keras.layers.Add(dtype=dtype, name="embeddings_add")([x, position])
            x = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")(x)
            for block in transformer_blocks(
                num_layers,
                num_heads,
                intermediate_dim,
                dropout,
                activation,
                layer_norm_epsilon,
                dtype,
            ):
                x = block(x)
            sequence = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=dtype, name="final_layer_norm"
            )(x)
            pooled = SequencePooling(pooling, dtype=dtype, name="pooling")(sequence)
        super().__init__(
            inputs=audio,
            outputs=outputs_for(output_mode, pooled, sequence),
            name=name,
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.sampling_rate = sampling_rate
        self.num_mel_bins = num_mel_bins
        self.fft_length = fft_length
        self.sequence_stride = sequence_stride
        self.hidden_dim = hidden_dim
        self.num_conv_layers = num_conv_layers
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.pooling = pooling
        self.output_mode = output_mode
        self.num_samples = num_samples
        self.activation = activation_config
        self.layer_norm_epsilon = layer_norm_epsilon

    _input_key = "audio"

    def _check_inputs(self, inputs):
        audio, shape = self._unpack_input(inputs, dtype="float32")
        minimum = self.fft_length // 2 + 1
        ok = shape_matches(shape, (None, self.num_samples)) and (
            shape[1] is None or shape[1] >= minimum
        )
        if not ok:
            if self.num_samples is None:
                expected = f"a float waveform (batch, samples), samples >= {minimum}"
            else:
                expected = f"a float waveform (batch, {self.num_samples})"
            raise self._input_error(expected, audio)
        return audio

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sampling_rate": self.sampling_rate,
                "num_mel_bins": self.num_mel_bins,
                "fft_length": self.fft_length,
                "sequence_stride": self.sequence_stride,
                "hidden_dim": self.hidden_dim,
                "num_conv_layers": self.num_conv_layers,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "pooling": self.pooling,
                "output_mode": self.output_mode,
                "num_samples": self.num_samples,
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
