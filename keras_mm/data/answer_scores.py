"""Soft VQA answer targets for a binary cross-entropy answer classifier."""

import numpy as np

from keras_mm.api_export import keras_mm_export


@keras_mm_export("keras_mm.data.make_answer_scores")
def make_answer_scores(answers, answer_vocabulary):
    """Soft answer scores `min(#annotators who gave the answer / 3, 1)`.

    The targets of the VQA v2 answer classifiers trained with a sigmoid binary
    cross-entropy over the answer vocabulary (Teney et al., 2018, section 3.3):
    an answer given by 3 or more of the humans scores 1, by 2 scores 2/3, by 1
    scores 1/3, as in the VQA accuracy (`keras_mm.metrics.vqa_accuracy`).
    A single answer string (a procedural dataset) scores 1. Answers outside
    `answer_vocabulary` are dropped (their row may be all zero).
    Use with `VQAModel.compile(loss="binary_crossentropy")`.

    Args:
        answers: list with, per question, one answer str or a list of the
            human answers (e.g. `read_vqa(...)["answers"]`), compared exactly
            (VQA annotations are already normalised).
        answer_vocabulary: list of str, index = answer id.

    Returns:
        float32 array `(num_questions, len(answer_vocabulary))` in [0, 1].

    Example:

    >>> make_answer_scores([["2", "2", "3"], "red"], ["2", "3", "red"]).round(2)
    array([[0.67, 0.33, 0.  ],
           [0.  , 0.  , 1.  ]], dtype=float32)
    """
    if isinstance(answers, str):
        raise ValueError(
            "`answers` must be a list with one entry per question, not a single "
            f"string. Received: answers={answers[:60]!r}"
        )
    if isinstance(answer_vocabulary, str) or not len(answer_vocabulary):
        raise ValueError(
            "`answer_vocabulary` must be a non-empty list of str. Received: "
            f"answer_vocabulary={str(answer_vocabulary)[:60]!r}"
        )
    index = {a: i for i, a in enumerate(answer_vocabulary)}
    if len(index) != len(answer_vocabulary):
        raise ValueError("`answer_vocabulary` must not repeat an answer.")
    answers = list(answers)
    scores = np.zeros((len(answers), len(index)), "float32")
    for q, given in enumerate(answers):
        if isinstance(given, str):  # one definitive answer
            if given in index:
                scores[q, index[given]] = 1.0
            continue
        given = list(given)
        if not given or not all(isinstance(a, str) for a in given):
            raise ValueError(
                f"`answers[{q}]` must be a str or a non-empty list of str. "
                f"Received: {str(given)[:80]!r}"
            )
        for a in set(given):
            if a in index:
                scores[q, index[a]] = min(given.count(a) / 3.0, 1.0)
    return scores
