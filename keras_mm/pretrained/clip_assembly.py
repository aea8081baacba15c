"""Private helper: a keras_mm `CLIP` around two pretrained keras-hub towers.

keras_mm's `CLIP` projects each tower's pooled features with a
`ProjectionHead(embed_dim)` (a `Dense` with a bias, then L2 normalisation) and
scores pairs with a `ContrastiveLogits` head. A pretrained CLIP projects with a
bias-free matrix and SigLIP's towers already end in their own heads. Both are
written exactly into keras_mm's layers: the projection matrix (or the identity
for SigLIP) goes into the head's kernel and its bias is set to zero, so the
outputs equal the source model's (`x W + 0 = x W`, `x I = x` exactly in float
arithmetic). In fine-tuning the zero bias (and SigLIP's identity) then train like
any other weight; freeze them with `model.image_projection.trainable = False`.
"""

import math

import numpy as np

from keras_mm.encoders import HubEncoder
from keras_mm.models import CLIP
from keras_mm.pretrained.converted_hub_encoder import ConvertedHubEncoder


def _wrap(backbone, epsilon, name):
    if epsilon is None:
        return HubEncoder(backbone, name=name)
    return ConvertedHubEncoder(backbone, layer_norm_epsilon=epsilon, name=name)


def _set(variable, value, what):
    value = np.asarray(value)
    if tuple(variable.shape) != value.shape:
        raise ValueError(
            f"Cannot load {what}: expected shape {tuple(variable.shape)}. Received: "
            f"shape={value.shape}"
        )
    variable.assign(value)


def assemble_clip(
    vision_backbone,
    text_backbone,
    loss,
    log_scale,
    logit_bias=None,
    image_projection=None,
    text_projection=None,
    vision_epsilon=None,
    text_epsilon=None,
    dtype=None,
    name=None,
):
    """Build a keras_mm `CLIP` from two keras-hub towers and the head weights.

    Args:
        vision_backbone, text_backbone: keras-hub towers holding their weights.
        loss: `"clip"` or `"siglip"`.
        log_scale: float. The logit scale's logarithm (`logit_scale`).
        logit_bias: float or None. SigLIP's logit bias.
        image_projection, text_projection: `(d_tower, embed_dim)` matrices or
            None for none (the tower's output is the embedding).
        vision_epsilon, text_epsilon: float or None. Layer-norm epsilon to set on
            the tower (`ConvertedHubEncoder`); None keeps the backbone's.
        dtype: dtype policy of the model's own layers, or None.
        name: str or None.
    """
    image_encoder = _wrap(vision_backbone, vision_epsilon, "image_encoder")
    text_encoder = _wrap(text_backbone, text_epsilon, "text_encoder")
    vision_dim = int(image_encoder.output.shape[-1])
    text_dim = int(text_encoder.output.shape[-1])
    if image_projection is None:
        image_projection = np.eye(vision_dim, dtype="float32")
    if text_projection is None:
        text_projection = np.eye(text_dim, dtype="float32")
    image_projection = np.asarray(image_projection, dtype="float32")
    text_projection = np.asarray(text_projection, dtype="float32")
    embed_dim = int(image_projection.shape[-1])
    if int(text_projection.shape[-1]) != embed_dim:
        raise ValueError(
            "The image and text embeddings must have the same size. Received: image "
            f"projection shape={image_projection.shape}, text projection "
            f"shape={text_projection.shape}"
        )
    log_scale = float(log_scale)
    scale = math.exp(log_scale)
    kwargs = {"name": name} if name else {}
    model = CLIP(
        image_encoder,
        text_encoder,
        embed_dim=embed_dim,
        loss=loss,
        init_scale=scale,
        # CLIP clamps its scale at 100 in training; keep a loaded scale that is
        # (a rounding error) above it exact. SigLIP does not clamp.
        max_scale=max(100.0, scale) if loss == "clip" else None,
        dtype=dtype,
        **kwargs,
    )
    for head, kernel, what in (
        (model.image_projection, image_projection, "the image projection"),
        (model.text_projection, text_projection, "the text projection"),
    ):
        dense = head.output_dense
        _set(dense.kernel, kernel, what)
        _set(dense.bias, np.zeros(tuple(dense.bias.shape), "float32"), what)
    _set(model.logits_head.log_scale, np.float32(log_scale), "the logit scale")
    if logit_bias is not None:
        _set(model.logits_head.bias, np.float32(logit_bias), "the logit bias")
    return model
