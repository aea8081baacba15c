import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.losses.loss_utils import (
    check_logits,
    default_labels,
    is_positives_matrix,
    positives,
    to_float32,
)


def _siglip_rows(fn_name, logits, labels):
    """Per-row sums `-sum_j log sigmoid(y_ij z_ij)`, `(B_image,)`."""
    logits = to_float32(logits)
    check_logits(fn_name, logits, square=labels is not None and not _is_pair(labels))
    signs = 2.0 * positives(fn_name, logits, labels) - 1.0
    # log_sigmoid(x) = -softplus(-x): finite and exact for |x| of 1e4.
    return -ops.sum(ops.log_sigmoid(signs * logits), axis=1)


def _is_pair(labels):
    """A label pair or a positives matrix: the logits need not be square."""
    return isinstance(labels, (list, tuple)) or is_positives_matrix(labels)


@keras_mm_export("keras_mm.losses.siglip_loss")
def siglip_loss(logits, labels=None):
    """Pairwise sigmoid loss of SigLIP, with big_vision's normalisation.

    Every image-text pair is an independent binary classification,

        L = -1/B_i sum_ij log sigmoid(y_ij z_ij),   y_ij = +1 if (i, j) is a
        positive pair, -1 otherwise,

    where `z = t x y^T + b` are the logits (see `keras_mm.layers.ContrastiveLogits`
    with `init_scale=10, init_bias=-10`). The sum over all pairs is divided by the
    number of images `B_i`, as in big_vision (not by `B_i * B_t`). Computed in
    float32 with `log_sigmoid`, stable for logits of any magnitude.

    Args:
        logits: `(B_image, B_text)` tensor.
        labels: None (positives on the diagonal `i == j`; non-square logits
            allowed, e.g. a chunk of negatives), a `(B,)` tensor of group ids
            (square logits), a pair `(image_labels, text_labels)`, or the
            `(B_image, B_text)` 0/1 matrix of positives.

    Returns:
        Scalar float32 loss.

    Example:

    >>> import numpy as np
    >>> z = np.where(np.eye(2) > 0, 30.0, -30.0)
    >>> float(siglip_loss(z)) < 1e-12
    True

    Reference:
        Zhai et al., 2023, "Sigmoid Loss for Language Image Pre-Training",
        algorithm 1; big_vision `siglip` trainer.
    """
    return ops.mean(_siglip_rows("siglip_loss", logits, labels))


@keras_mm_export("keras_mm.losses.SigLIPLoss")
class SigLIPLoss(keras.losses.Loss):
    """Pairwise sigmoid loss of SigLIP as a `keras.losses.Loss`.

    See `siglip_loss` for the equation. Call convention: `y_true` holds the
    optional labels (None, `(B,)` group ids, or an `(image_labels, text_labels)`
    pair) and `y_pred` the `(B_image, B_text)` logits:
    `SigLIPLoss()(None, logits)`. `call` returns the per-image sums
    `-sum_j log sigmoid(y_ij z_ij)`, `(B_image,)`, whose mean (the default
    reduction) is `siglip_loss`.

    Args:
        name: str. Name of the loss.
        reduction: Keras reduction, default `"sum_over_batch_size"` (mean).
        dtype: computation dtype; float32 by default (keep it).

    Example:

    >>> import numpy as np
    >>> z = np.where(np.eye(2) > 0, 30.0, -30.0)
    >>> float(SigLIPLoss()(None, z)) < 1e-12
    True

    Reference:
        Zhai et al., 2023 (SigLIP); seed sections 3.2.1 and 4.1.2.
    """

    def __init__(self, name="siglip_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def __call__(self, y_true=None, y_pred=None, sample_weight=None):
        if y_true is None:
            check_logits(self.__class__.__name__, y_pred, square=False)
            y_true = default_labels(y_pred, pair=True)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        return _siglip_rows(self.__class__.__name__, y_pred, y_true)
