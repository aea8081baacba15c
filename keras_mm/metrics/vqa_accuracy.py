"""VQA accuracy with the official formula and answer normalisation."""

import numpy as np

from keras_mm.api_export import keras_mm_export
from keras_mm.metrics.normalize_vqa_answer import (
    normalize_vqa_answer,
    process_punctuation,
)


def _question_accuracy(prediction, answers):
    """Official per-question accuracy (GT-Vision-Lab/VQA vqaEval.evaluate)."""
    prediction = normalize_vqa_answer(prediction)
    if len(set(answers)) > 1:  # the official script only then cleans the answers
        answers = [process_punctuation(a) for a in answers]
    scores = []
    for i in range(len(answers)):  # leave each human out: the C(10, 9) subsets
        others = answers[:i] + answers[i + 1 :]
        scores.append(min(1.0, sum(a == prediction for a in others) / 3.0))
    return sum(scores) / len(scores)


@keras_mm_export("keras_mm.metrics.vqa_accuracy")
def vqa_accuracy(predictions, answers, return_per_question=False):
    """VQA accuracy: `min(#humans who gave the answer / 3, 1)`, official protocol.

    For each question the prediction is normalised (`normalize_vqa_answer`) and
    scored against every subset of 9 of the 10 human answers, `min(#matches / 3,
    1)`, and the 10 scores are averaged (Antol et al., 2015; Goyal et al., 2017).
    As in the official `vqaEval.py`, the human answers are punctuation-cleaned only
    when they are not all identical (VQA annotations are already normalised at
    collection time). The result is in [0, 1]; the leaderboard reports x100.

    Args:
        predictions: list of str, one answer per question.
        answers: list (one per question) of lists of str, the human answers
            (10 in VQA v2; e.g. `read_vqa(...)["answers"]`).
        return_per_question: bool. Also return the per-question accuracies.

    Returns:
        A Python float, the mean accuracy; or `(mean, per_question)` with
        `per_question` a float64 NumPy array.

    Example:

    >>> vqa_accuracy(["Two"], [["2"] * 2 + ["3"] * 8])
    0.6
    """
    if isinstance(predictions, str) or isinstance(answers, str):
        raise ValueError(
            "`predictions` and `answers` must be lists (one entry per question), "
            "not a single string."
        )
    predictions, answers = list(predictions), list(answers)
    if len(predictions) != len(answers) or not predictions:
        raise ValueError(
            "`predictions` and `answers` must be non-empty and of the same length. "
            f"Received: {len(predictions)} predictions and {len(answers)} answer "
            "lists"
        )
    per_question = np.zeros(len(predictions))
    for q, (pred, gts) in enumerate(zip(predictions, answers)):
        if not isinstance(pred, str):
            raise ValueError(
                f"`predictions[{q}]` must be a str. Received: {type(pred).__name__}"
            )
        if isinstance(gts, str) or not gts or not all(isinstance(a, str) for a in gts):
            raise ValueError(
                f"`answers[{q}]` must be a non-empty list of str. Received: "
                f"{str(gts)[:80]!r}"
            )
        per_question[q] = _question_accuracy(pred, list(gts))
    mean = float(per_question.mean())
    return (mean, per_question) if return_per_question else mean
