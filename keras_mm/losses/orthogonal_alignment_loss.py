import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.losses.loss_utils import check_rank, check_same_shape, to_float32


def _check_views(fn_name, zx, zy, names=("zx", "zy")):
    zx, zy = to_float32(zx), to_float32(zy)
    check_rank(fn_name, zx, 2, names[0], "(B, units)")
    check_rank(fn_name, zy, 2, names[1], "(B, units)")
    check_same_shape(fn_name, zx, zy, *names)
    return zx, zy


def _squared_distances(fn_name, zx, zy):
    zx, zy = _check_views(fn_name, zx, zy)
    return ops.sum(ops.square(zx - zy), axis=-1)


@keras_mm_export("keras_mm.losses.orthogonal_alignment_loss")
def orthogonal_alignment_loss(zx, zy):
    """Alignment loss of orthogonal CCA (seed section 4.2.1).

        L = ||z_x - z_y||_F^2 / B,   z_x = X W_x,  z_y = Y W_y,

    the squared Frobenius distance between the two projected views, averaged over
    the batch. It is meaningful only with constrained projections: use it with
    `keras_mm.layers.OrthogonalAlignment`, whose `W_x^T W_x = W_y^T W_y = I`
    holds exactly, otherwise `W = 0` is a trivial minimiser; and whiten the views
    first, otherwise directions of near-zero variance are near-trivial
    minimisers too. Float32.

    Args:
        zx: `(B, units)` tensor, the first projected view.
        zy: `(B, units)` tensor, the second projected view.

    Returns:
        Scalar float32 loss.

    Example:

    >>> import numpy as np
    >>> float(orthogonal_alignment_loss(np.ones((2, 3)), np.zeros((2, 3))))
    3.0

    Reference:
        Seed section 4.2.1; Hotelling, 1936 (CCA); Golub and Van Loan,
        "Matrix Computations", orthogonal Procrustes problem.
    """
    return ops.mean(_squared_distances("orthogonal_alignment_loss", zx, zy))


@keras_mm_export("keras_mm.losses.OrthogonalAlignmentLoss")
class OrthogonalAlignmentLoss(keras.losses.Loss):
    """`||z_x - z_y||_F^2 / B` as a `keras.losses.Loss` (seed section 4.2.1).

    See `orthogonal_alignment_loss`. Call convention: `y_true` = first view
    `z_x`, `y_pred` = second view `z_y` (the loss is symmetric). `call` returns
    the per-example `||z_x,i - z_y,i||^2`, `(B,)`; the default reduction averages
    it.

    Args:
        name: str. Name of the loss.
        reduction: Keras reduction, default `"sum_over_batch_size"` (mean).
        dtype: computation dtype; float32 by default (keep it).

    Example:

    >>> import numpy as np
    >>> float(OrthogonalAlignmentLoss()(np.ones((2, 3)), np.zeros((2, 3))))
    3.0

    Reference:
        Seed section 4.2.1.
    """

    def __init__(
        self,
        name="orthogonal_alignment_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return _squared_distances(self.__class__.__name__, y_true, y_pred)
