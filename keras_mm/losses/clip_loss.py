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


def _clip_terms(fn_name, logits, labels):
    """Row-wise and column-wise soft-target cross-entropies of the logits.

    Returns `(row_ce, row_valid, col_ce, col_valid)`: `(B_image,)` and
    `(B_text,)` cross-entropies and float masks of the rows/columns that have at
    least one positive.
    """
    logits = to_float32(logits)
    pair = isinstance(labels, (list, tuple)) or is_positives_matrix(labels)
    check_logits(fn_name, logits, square=not pair)
    pos = positives(fn_name, logits, labels)
    # Soft targets: uniform over the positives of each row / column. A row
    # without positives (possible only with a (image_labels, text_labels) pair)
    # gets an all-zero target and is left out of the mean.
    row_count = ops.sum(pos, axis=1)
    col_count = ops.sum(pos, axis=0)
    row_valid = ops.cast(row_count > 0, "float32")
    col_valid = ops.cast(col_count > 0, "float32")
    row_targets = pos / ops.expand_dims(ops.maximum(row_count, 1.0), 1)
    col_targets = pos / ops.expand_dims(ops.maximum(col_count, 1.0), 0)
    # log_softmax subtracts the max first: exact for logits of magnitude 1e4.
    row_ce = -ops.sum(row_targets * ops.log_softmax(logits, axis=1), axis=1)
    col_ce = -ops.sum(col_targets * ops.log_softmax(logits, axis=0), axis=0)
    return row_ce, row_valid, col_ce, col_valid


def _masked_mean(values, valid):
    return ops.sum(values * valid) / ops.maximum(ops.sum(valid), 1.0)


@keras_mm_export("keras_mm.losses.clip_loss")
def clip_loss(logits, labels=None):
    """Symmetric InfoNCE loss of CLIP (seed sections 3.2.1 and 4.1.2).

    `logits[i, j]` is the scaled similarity of image `i` and text `j`. The loss
    is the mean of the image-to-text (row-wise) and text-to-image (column-wise)
    cross-entropies,

        L = 1/2 [ 1/B_i sum_i H(t_i., softmax_j z_i.)
                + 1/B_t sum_j H(t_.j, softmax_i z_.j) ],

    where `t_i.` is uniform over the positives of row `i` (and `t_.j` over those
    of column `j`). Without labels the positives are the diagonal and this is
    exactly CLIP's `(CE(z, arange) + CE(z^T, arange)) / 2`; with group ids every
    pair with equal ids is a positive, so duplicate captions of an image are not
    pushed apart as negatives. Computed in float32 with `log_softmax` (stable for
    logits of any magnitude).

    Args:
        logits: `(B, B)` tensor, or `(B_image, B_text)` with a label pair.
        labels: None (diagonal positives), a `(B,)` tensor of group ids, a
            pair `(image_labels, text_labels)` of `(B_image,)` and `(B_text,)`
            group ids for non-square logits, or the `(B_image, B_text)` 0/1
            matrix of positives itself (a caption that fits several images,
            e.g. one naming only some of their attributes). Rows or columns
            without any positive are left out of their mean.

    Returns:
        Scalar float32 loss.

    Example:

    >>> import numpy as np
    >>> round(float(clip_loss(np.eye(3) * 20.0)), 6)
    0.0

    Reference:
        Radford et al., 2021, "Learning Transferable Visual Models From Natural
        Language Supervision", figure 3; van den Oord et al., 2018 (InfoNCE).
    """
    row_ce, row_valid, col_ce, col_valid = _clip_terms("clip_loss", logits, labels)
    return 0.5 * (_masked_mean(row_ce, row_valid) + _masked_mean(col_ce, col_valid))


@keras_mm_export("keras_mm.losses.CLIPLoss")
class CLIPLoss(keras.losses.Loss):
    """Symmetric InfoNCE loss of CLIP as a `keras.losses.Loss`.

    See `clip_loss` for the equation. Call convention: `y_true` holds the
    optional `(B,)` group ids (None for diagonal positives) and `y_pred` the
    `(B, B)` logits, so in a model's `compute_loss` write
    `CLIPLoss()(None, logits)`. `call` returns the per-pair losses
    `(row_ce_i + col_ce_i) / 2`, `(B,)`, whose mean (the default reduction) is
    `clip_loss`; `sample_weight` therefore weights pairs. For non-square logits
    pass `y_true=(image_labels, text_labels)`; `call` then returns the scalar
    `clip_loss`.

    Args:
        name: str. Name of the loss.
        reduction: Keras reduction, default `"sum_over_batch_size"` (mean).
        dtype: computation dtype; float32 by default (keep it).

    Example:

    >>> import numpy as np
    >>> round(float(CLIPLoss()(None, np.eye(3) * 20.0)), 6)
    0.0

    Reference:
        Radford et al., 2021 (CLIP); seed sections 3.2.1 and 4.1.2.
    """

    def __init__(self, name="clip_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def __call__(self, y_true=None, y_pred=None, sample_weight=None):
        if y_true is None:
            check_logits(self.__class__.__name__, y_pred, square=True)
            y_true = default_labels(y_pred, pair=False)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        if isinstance(y_true, (list, tuple)):
            return clip_loss(y_pred, y_true)
        row_ce, _, col_ce, _ = _clip_terms(self.__class__.__name__, y_pred, y_true)
        return 0.5 * (row_ce + col_ce)
