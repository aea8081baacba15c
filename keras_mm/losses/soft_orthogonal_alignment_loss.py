import math

import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.losses.orthogonal_alignment_loss import _check_views


def _check_weight(orthogonality_weight):
    try:
        value = float(orthogonality_weight)
    except (TypeError, ValueError):
        value = float("nan")
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(
            f"`orthogonality_weight` must be a finite number >= 0. "
            f"Received: orthogonality_weight={orthogonality_weight!r}"
        )
    return value


@keras_mm_export("keras_mm.losses.soft_orthogonal_alignment_loss")
def soft_orthogonal_alignment_loss(fx, gy, orthogonality_weight=1.0):
    """Penalty form of deep orthogonal alignment (seed section 4.2.2).

        L = ||f_x - g_y||_F^2 / B
            + w ( ||f_x^T f_x / B - I||_F^2 + ||g_y^T g_y / B - I||_F^2 ),

    the alignment distance of two network outputs plus a soft version of the
    seed's constraints `f^T f = g^T g = I` (with the batch normalisation `1/B`,
    so that the constraint does not depend on the batch size). The features are
    not centred. Unlike `deep_cca_loss`, the constraint holds only approximately
    (more tightly as `w` grows). Float32.

    Args:
        fx: `(B, units)` tensor, the first network's output.
        gy: `(B, units)` tensor, the second network's output.
        orthogonality_weight: float >= 0. The penalty weight `w`.

    Returns:
        Scalar float32 loss.

    Example:

    >>> import numpy as np
    >>> z = 2.0 * np.eye(4, 2)  # z^T z / 4 = I
    >>> float(soft_orthogonal_alignment_loss(z, z))
    0.0

    Reference:
        Seed section 4.2.2; the soft decorrelation penalty of Chang et al.,
        2018, "Scalable and Effective Deep CCA via Soft Decorrelation".
    """
    name = "soft_orthogonal_alignment_loss"
    weight = _check_weight(orthogonality_weight)
    fx, gy = _check_views(name, fx, gy, names=("fx", "gy"))
    batch = ops.cast(ops.shape(fx)[0], "float32")
    identity = ops.eye(ops.shape(fx)[1], dtype="float32")
    distance = ops.sum(ops.square(fx - gy)) / batch
    fx_gram = ops.matmul(ops.transpose(fx), fx) / batch
    gy_gram = ops.matmul(ops.transpose(gy), gy) / batch
    penalty = ops.sum(ops.square(fx_gram - identity)) + ops.sum(
        ops.square(gy_gram - identity)
    )
    return distance + weight * penalty


@keras_mm_export("keras_mm.losses.SoftOrthogonalAlignmentLoss")
class SoftOrthogonalAlignmentLoss(keras.losses.Loss):
    """`soft_orthogonal_alignment_loss` as a `keras.losses.Loss`.

    Call convention: `y_true` = `f_x`, `y_pred` = `g_y`. The Gram penalties are
    batch statistics, so `call` returns the scalar loss; `sample_weight` only
    rescales it.

    Args:
        orthogonality_weight: float >= 0. The penalty weight `w`.
        name: str. Name of the loss.
        reduction: Keras reduction, default `"sum_over_batch_size"`.
        dtype: computation dtype; float32 by default (keep it).

    Example:

    >>> import numpy as np
    >>> z = 2.0 * np.eye(4, 2)  # z^T z / 4 = I
    >>> float(SoftOrthogonalAlignmentLoss()(z, z))
    0.0

    Reference:
        Seed section 4.2.2.
    """

    def __init__(
        self,
        orthogonality_weight=1.0,
        name="soft_orthogonal_alignment_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.orthogonality_weight = _check_weight(orthogonality_weight)

    def call(self, y_true, y_pred):
        return soft_orthogonal_alignment_loss(
            y_true, y_pred, orthogonality_weight=self.orthogonality_weight
        )

    def get_config(self):
        config = super().get_config()
        config["orthogonality_weight"] = self.orthogonality_weight
        return config
