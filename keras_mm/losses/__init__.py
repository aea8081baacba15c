"""Alignment objectives: contrastive, sigmoid, orthogonal, CCA, distillation."""

from keras_mm.losses.clip_loss import CLIPLoss, clip_loss
from keras_mm.losses.deep_cca_loss import DeepCCALoss, deep_cca_loss
from keras_mm.losses.distillation_loss import DistillationLoss, distillation_loss
from keras_mm.losses.orthogonal_alignment_loss import (
    OrthogonalAlignmentLoss,
    orthogonal_alignment_loss,
)
from keras_mm.losses.siglip_loss import SigLIPLoss, siglip_loss
from keras_mm.losses.soft_orthogonal_alignment_loss import (
    SoftOrthogonalAlignmentLoss,
    soft_orthogonal_alignment_loss,
)

__all__ = [
    "CLIPLoss",
    "DeepCCALoss",
    "DistillationLoss",
    "OrthogonalAlignmentLoss",
    "SigLIPLoss",
    "SoftOrthogonalAlignmentLoss",
    "clip_loss",
    "deep_cca_loss",
    "distillation_loss",
    "orthogonal_alignment_loss",
    "siglip_loss",
    "soft_orthogonal_alignment_loss",
]
