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
from keras_mm.losses.tiled_contrastive_loss import (
    clip_loss_from_embeddings,
    siglip_loss_from_embeddings,
)

__all__ = [
    "CLIPLoss",
    "DeepCCALoss",
    "DistillationLoss",
    "OrthogonalAlignmentLoss",
    "SigLIPLoss",
    "SoftOrthogonalAlignmentLoss",
    "clip_loss",
    "clip_loss_from_embeddings",
    "deep_cca_loss",
    "distillation_loss",
    "orthogonal_alignment_loss",
    "siglip_loss",
    "siglip_loss_from_embeddings",
    "soft_orthogonal_alignment_loss",
]
