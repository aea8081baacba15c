"""keras_mm: multimodal models for Keras 3 on TensorFlow, JAX and PyTorch."""

from keras_mm import (
    activations,
    data,
    encoders,
    layers,
    losses,
    metrics,
    models,
    pretrained,
    testing,
)
from keras_mm.version import __version__

__all__ = [
    "__version__",
    "activations",
    "data",
    "encoders",
    "layers",
    "losses",
    "metrics",
    "models",
    "pretrained",
    "testing",
]
