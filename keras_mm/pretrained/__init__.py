"""Pretrained weights: keras-hub presets and Hugging Face checkpoints in keras_mm.

Nothing here imports keras-hub, TensorFlow or `transformers` until a function is
called, so `import keras_mm` stays light.
"""

from keras_mm.pretrained.clip_from_huggingface import clip_from_huggingface
from keras_mm.pretrained.clip_from_keras_hub import clip_from_keras_hub
from keras_mm.pretrained.converted_hub_encoder import ConvertedHubEncoder
from keras_mm.pretrained.learning_rate_multipliers import learning_rate_multipliers

__all__ = [
    "ConvertedHubEncoder",
    "clip_from_huggingface",
    "clip_from_keras_hub",
    "learning_rate_multipliers",
]
