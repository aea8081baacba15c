"""Top-K accuracy of zero-shot classification."""

import numpy as np

from keras_mm.api_export import keras_mm_export
from keras_mm.metrics._utils import check_finite, check_ks, to_numpy


@keras_mm_export("keras_mm.metrics.zero_shot_accuracy")
def zero_shot_accuracy(logits, labels, ks=(1, 5)):
    """Top-K accuracy of zero-shot classification scores.

    In CLIP's zero-shot protocol (Radford et al., 2021, section 3.1.2) `logits[n, j]`
    is the similarity of image `n` to the text embedding of class `j`
    (`image_embeddings @ zero_shot_classifier(prompt_embeddings).T`). A sample is
    correct at K when fewer than K other classes score at least as high as its
    label (ties count against it, so constant scores are never "correct").

    Args:
        logits: `(N, num_classes)` array or tensor of finite scores.
        labels: `(N,)` int class ids.
        ks: int or list of int.

    Returns:
        A dict of Python floats in [0, 1]: `"top{K}"` for each K (`"top1"`,
        `"top5"`).

    Example:

    >>> zero_shot_accuracy([[0.1, 0.9, 0.0], [0.8, 0.1, 0.3]], [1, 2], ks=(1, 2))
    {'top1': 0.5, 'top2': 1.0}
    """
    ks = check_ks(ks)
    scores = to_numpy(logits, "logits")
    if scores.ndim != 2 or 0 in scores.shape:
        raise ValueError(
            "`logits` must be a non-empty (N, num_classes) matrix. Received: "
            f"shape={scores.shape}"
        )
    check_finite(scores, "logits")
    y = to_numpy(labels, "labels")
    if (
        y.shape != (scores.shape[0],)
        or np.any(y != np.round(y))
        or np.any(y < 0)
        or np.any(y >= scores.shape[1])
    ):
        raise ValueError(
            f"`labels` must be ({scores.shape[0]},) integers in "
            f"[0, {scores.shape[1]}). Received: shape={y.shape}"
        )
    y = y.astype("int64")
    true = scores[np.arange(len(y)), y]
    rank = np.sum(scores >= true[:, None], axis=1)  # 1 = best, ties against
    return {f"top{k}": float(np.mean(rank <= k)) for k in ks}
