"""Named tiny multimodal autoencoder configurations (fresh weights; no download).

Sized for `keras_mm.data.load_digits_trimodal` (32x32 images and 4,000-sample
waveforms at 8 kHz).
"""

autoencoder_presets = {
    "autoencoder_digits_tiny": {
        "description": (
            "Image (ViT 32x32/8 width 32) + audio (log-mel, width 32) encoders, "
            "concat fusion to a 32-d code, MLP decoders."
        ),
        "encoders": {
            "images": {
                "class_name": "ImageEncoder",
                "config": {
                    "image_shape": (32, 32, 3),
                    "patch_size": 8,
                    "hidden_dim": 32,
                    "num_layers": 1,
                    "num_heads": 4,
                    "intermediate_dim": 64,
                    "pooling": "mean",
                },
            },
            "audio": {
                "class_name": "AudioEncoder",
                "config": {
                    "sampling_rate": 8000,
                    "num_samples": 4000,
                    "num_mel_bins": 32,
                    "fft_length": 256,
                    "sequence_stride": 128,
                    "hidden_dim": 32,
                    "num_conv_layers": 2,
                    "num_layers": 1,
                    "num_heads": 4,
                    "intermediate_dim": 64,
                },
            },
        },
        "code_dim": 32,
        "fusion": "concat",
        "modality_dropout": 0.5,
        "decoder_hidden_dim": 128,
        "seed": 0,
    },
}
