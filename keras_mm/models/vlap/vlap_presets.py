"""Named tiny VLAP configurations (architectures with fresh weights; no download).

Sized for `keras_mm.data.load_digits_trimodal` (32x32 images, <= 16 tokens, a
vocabulary of <= 64 words, 4,000-sample waveforms at 8 kHz).
"""

vlap_presets = {
    "vlap_digits_tiny": {
        "description": (
            "ViT 32x32/8 width 32 + text transformer width 32 + log-mel audio "
            "encoder width 32 (8 kHz, 4,000 samples); attention fusion, "
            "embed_dim 32."
        ),
        "image_encoder": {
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
        "text_encoder": {
            "class_name": "TextEncoder",
            "config": {
                "vocabulary_size": 64,
                "max_sequence_length": 16,
                "hidden_dim": 32,
                "num_layers": 1,
                "num_heads": 4,
                "intermediate_dim": 64,
            },
        },
        "audio_encoder": {
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
        "embed_dim": 32,
        "fusion": "attention",
    },
}
