"""Named tiny CLIP configurations (architectures with fresh weights; no download).

Sized for `keras_mm.data.load_shapes` (32x32 images, captions of <= 16 tokens,
a vocabulary of <= 64 words); override `text_encoder={"vocabulary_size": ...}`
for another vocabulary.
"""

clip_presets = {
    "clip_shapes_tiny": {
        "description": (
            "ViT 32x32/8, width 32, 1 block + text transformer width 32, 1 block; "
            "embed_dim 32. Learns colours in one epoch; shapes need many epochs "
            "(a small CNN image encoder learns them in a few)."
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
        "embed_dim": 32,
        "loss": "clip",
    },
    "clip_shapes_small": {
        "description": (
            "ViT 32x32/8, width 64, 2 blocks + text transformer width 64, "
            "2 blocks; embed_dim 64."
        ),
        "image_encoder": {
            "class_name": "ImageEncoder",
            "config": {
                "image_shape": (32, 32, 3),
                "patch_size": 8,
                "hidden_dim": 64,
                "num_layers": 2,
                "num_heads": 4,
                "intermediate_dim": 128,
            },
        },
        "text_encoder": {
            "class_name": "TextEncoder",
            "config": {
                "vocabulary_size": 64,
                "max_sequence_length": 16,
                "hidden_dim": 64,
                "num_layers": 2,
                "num_heads": 4,
                "intermediate_dim": 128,
            },
        },
        "embed_dim": 64,
        "loss": "clip",
    },
}
