"""keras_mm.models: model families that train with `compile(optimizer)` + `fit(x)`."""

from keras_mm.models.clip.clip_model import CLIP
from keras_mm.models.multimodal_model import MultimodalModel

__all__ = [
    "CLIP",
    "MultimodalModel",
]
