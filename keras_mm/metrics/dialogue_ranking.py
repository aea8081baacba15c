"""Candidate-answer ranking (VisDial): recall@K, mean reciprocal rank, mean rank."""

import numpy as np

from keras_mm.api_export import keras_mm_export
from keras_mm.metrics._utils import check_finite, check_ks, to_numpy


@keras_mm_export("keras_mm.metrics.ranking_metrics")
def ranking_metrics(scores, answer_index, ks=(1, 5, 10)):
    """Rank the true answer among candidates: recall@K, MRR and mean rank.

    The discriminative metrics of Visual Dialog (Das et al., 2017): each
    question comes with `N` candidate answers scored by the model; the rank of
    the true answer is 1 plus the number of other candidates scoring at least
    as high (ties count against the model, so equal scores give the worst
    rank, as in `keras_mm.metrics.retrieval_metrics`). Then

        R@K = mean(rank <= K),  MRR = mean(1 / rank),  mean rank = mean(rank).

    A random scorer gets `R@1 = 1 / N` and `MRR = H_N / N` in expectation.

    Args:
        scores: `(num_questions, N)` array or tensor of candidate scores.
            Must be finite.
        answer_index: `(num_questions,)` int, the index of the true candidate.
        ks: int or list of int.

    Returns:
        A dict of Python floats: `"r{K}"` for each K (in [0, 1]), `"mrr"`
        (in (0, 1]) and `"mean_rank"` (in [1, N]).

    Example:

    >>> scores = [[0.1, 0.9, 0.3], [0.5, 0.2, 0.4]]
    >>> m = ranking_metrics(scores, answer_index=[1, 2], ks=(1, 2))
    >>> m["r1"], m["r2"], m["mrr"], m["mean_rank"]
    (0.5, 1.0, 0.75, 1.5)
    """
    ks = check_ks(ks)
    scores = to_numpy(scores, "scores")
    if scores.ndim != 2 or 0 in scores.shape:
        raise ValueError(
            "`scores` must be a non-empty (num_questions, num_candidates) matrix. "
            f"Received: shape={scores.shape}"
        )
    check_finite(scores, "scores")
    num_questions, num_candidates = scores.shape
    index = to_numpy(answer_index, "answer_index")
    if (
        index.shape != (num_questions,)
        or np.any(index != np.round(index))
        or np.any(index < 0)
        or np.any(index >= num_candidates)
    ):
        raise ValueError(
            f"`answer_index` must be ({num_questions},) integers in [0, "
            f"{num_candidates}). Received: shape={index.shape}"
        )
    index = index.astype("int64")
    true_scores = scores[np.arange(num_questions), index]
    ranks = np.sum(scores >= true_scores[:, None], axis=1)  # the truth included
    out = {f"r{k}": float(np.mean(ranks <= k)) for k in ks}
    out["mrr"] = float(np.mean(1.0 / ranks))
    out["mean_rank"] = float(np.mean(ranks))
    return out
