"""keras_mm.models: model families that train with `compile(optimizer)` + `fit(x)`."""

from keras_mm.models.autoencoder.autoencoder_model import MultimodalAutoencoder
from keras_mm.models.captioner.captioner_model import Captioner
from keras_mm.models.clip.clip_model import CLIP
from keras_mm.models.dialogue.dialogue_model import DialogueModel
from keras_mm.models.distiller.distiller_model import Distiller
from keras_mm.models.multimodal_model import MultimodalModel
from keras_mm.models.text_to_image import ImageTokenizer, TextToImage
from keras_mm.models.vlap.vlap_model import VLAP
from keras_mm.models.vlmp.vlmp_model import VLMP
from keras_mm.models.vlp.vlp_model import VLP
from keras_mm.models.vqa.vqa_model import VQAModel

__all__ = [
    "CLIP",
    "Captioner",
    "DialogueModel",
    "Distiller",
    "ImageTokenizer",
    "MultimodalAutoencoder",
    "MultimodalModel",
    "TextToImage",
    "VLAP",
    "VLMP",
    "VLP",
    "VQAModel",
]
