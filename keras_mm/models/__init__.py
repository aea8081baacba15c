"""keras_mm.models: model families that train with `compile(optimizer)` + `fit(x)`."""

from keras_mm.models.autoencoder.autoencoder_model import MultimodalAutoencoder
from keras_mm.models.clip.clip_model import CLIP
from keras_mm.models.multimodal_model import MultimodalModel
from keras_mm.models.vlap.vlap_model import VLAP
from keras_mm.models.vlmp.vlmp_model import VLMP
from keras_mm.models.vlp.vlp_model import VLP

__all__ = [
    "CLIP",
    "MultimodalAutoencoder",
    "MultimodalModel",
    "VLAP",
    "VLMP",
    "VLP",
]
