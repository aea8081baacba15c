"""Named tiny VLMP configurations (architectures with fresh weights; no download).

Sized for 32x32 observations, instructions of <= 16 tokens from a vocabulary of
<= 64 words, and 2-D continuous actions (or 4 discrete ones).
"""

_IMAGE = {
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
}
_TEXT = {
    "class_name": "TextEncoder",
    "config": {
        "vocabulary_size": 64,
        "max_sequence_length": 16,
        "hidden_dim": 32,
        "num_layers": 1,
        "num_heads": 4,
        "intermediate_dim": 64,
    },
}

vlmp_presets = {
    "vlmp_tiny": {
        "description": (
            "ViT 32x32/8 width 32 + instruction transformer width 32, concat "
            "fusion, 2-D continuous action head, embed_dim 32."
        ),
        "image_encoder": _IMAGE,
        "text_encoder": _TEXT,
        "action_dim": 2,
        "action_type": "continuous",
        "embed_dim": 32,
        "hidden_dim": 64,
        "fusion": "concat",
    },
    "vlmp_discrete_tiny": {
        "description": "As vlmp_tiny with a 4-way discrete action head.",
        "image_encoder": _IMAGE,
        "text_encoder": _TEXT,
        "action_dim": 4,
        "action_type": "discrete",
        "embed_dim": 32,
        "hidden_dim": 64,
        "fusion": "concat",
    },
}
