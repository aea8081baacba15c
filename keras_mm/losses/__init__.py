"""Alignment objectives: contrastive, sigmoid, orthogonal, CCA, distillation."""

from keras_mm.losses.clip_loss import CLIPLoss, clip_loss
from keras_mm.losses.siglip_loss import SigLIPLoss, siglip_loss

__all__ = [
    "CLIPLoss",
    "SigLIPLoss",
    "clip_loss",
    "siglip_loss",
]
