"""Multimodal knowledge distillation (seed section 3.3.3)."""

from keras_mm.models.distiller.distiller_model import Distiller

__all__ = ["Distiller"]
