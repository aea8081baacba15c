"""Reusable multimodal layers: fusion, cross-modal attention, projection."""

from keras_mm.layers.attention_fusion import AttentionFusion
from keras_mm.layers.concat_fusion import ConcatFusion
from keras_mm.layers.contrastive_logits import ContrastiveLogits
from keras_mm.layers.cross_modal_attention import CrossModalAttention
from keras_mm.layers.gated_fusion import GatedFusion
from keras_mm.layers.linear_cca import LinearCCA
from keras_mm.layers.orthogonal_alignment import OrthogonalAlignment
from keras_mm.layers.projection_head import ProjectionHead

__all__ = [
    "AttentionFusion",
    "ConcatFusion",
    "ContrastiveLogits",
    "CrossModalAttention",
    "GatedFusion",
    "LinearCCA",
    "OrthogonalAlignment",
    "ProjectionHead",
]
