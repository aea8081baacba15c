"""Image captioning: `Captioner` (image encoder + transformer decoder)."""

from keras_mm.models.captioner.captioner_model import Captioner

__all__ = ["Captioner"]
