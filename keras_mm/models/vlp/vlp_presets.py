"""Named tiny VLP configurations (architectures with fresh weights; no download).

Sized for `keras_mm.data.load_shapes` / `load_digits_trimodal` (32x32 images,
<= 16 tokens, a vocabulary of <= 64 words).
"""

vlp_presets = {
    "vlp_tiny": {
        "description": (
            "ViT 32x32/8 width 32 + text transformer width 32 (token sequences), "
            "1 cross-attention fusion block, embed_dim 32."
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
                "output_mode": "sequence",
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
                "output_mode": "sequence",
            },
        },
        "embed_dim": 32,
        "num_fusion_layers": 1,
        "num_heads": 4,
        "seed": 0,
    },
}
