"""Visual and video question answering (seed section 6.2)."""

from keras_mm.models.vqa.vqa_model import VQAModel

__all__ = ["VQAModel"]
