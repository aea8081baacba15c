import doctest

import numpy as np
import pytest
from keras import ops

from keras_mm.metrics import dialogue_ranking
from keras_mm.metrics.dialogue_ranking import ranking_metrics


def _oracle(scores, answer_index, ks):
    """Sort each row by score (descending); the truth goes after its ties."""
    ranks = []
    for row, truth in zip(scores, answer_index):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j == truth))
        ranks.append(order.index(truth) + 1)
    ranks = np.asarray(ranks, dtype="float64")
    out = {f"r{k}": np.mean(ranks <= k) for k in ks}
    out["mrr"] = np.mean(1.0 / ranks)
    out["mean_rank"] = np.mean(ranks)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_numpy_oracle_with_ties(seed):
    rng = np.random.default_rng(seed)
    # Scores rounded to one decimal: many ties between candidates.
    scores = np.round(rng.normal(size=(50, 10)), 1)
    answer_index = rng.integers(0, 10, size=50)
    got = ranking_metrics(scores, answer_index, ks=(1, 3, 5, 10))
    want = _oracle(scores, answer_index, (1, 3, 5, 10))
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert isinstance(got[key], float)
        np.testing.assert_allclose(got[key], value, rtol=1e-12, err_msg=key)


def test_accepts_backend_tensors():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(8, 5)).astype("float32")
    index = rng.integers(0, 5, size=8)
    got = ranking_metrics(ops.convert_to_tensor(scores), ops.convert_to_tensor(index))
    assert got == ranking_metrics(scores, index)


def test_perfect_and_constant_scorers():
    index = np.array([0, 3, 1])
    perfect = np.zeros((3, 4))
    perfect[np.arange(3), index] = 1.0
    m = ranking_metrics(perfect, index, ks=(1,))
    assert (m["r1"], m["mrr"], m["mean_rank"]) == (1.0, 1.0, 1.0)
    # Equal scores count against the model: the truth ranks last.
    m = ranking_metrics(np.zeros((3, 4)), index, ks=(1, 4))
    assert (m["r1"], m["r4"], m["mean_rank"]) == (0.0, 1.0, 4.0)
    assert m["mrr"] == pytest.approx(0.25)


def test_random_scorer_is_near_one_over_n():
    rng = np.random.default_rng(4)
    scores = rng.normal(size=(20000, 10))
    m = ranking_metrics(scores, rng.integers(0, 10, size=20000), ks=(1,))
    assert abs(m["r1"] - 0.1) < 0.01
    harmonic = sum(1.0 / k for k in range(1, 11)) / 10
    assert abs(m["mrr"] - harmonic) < 0.01


@pytest.mark.parametrize(
    "scores, index, ks, match",
    [
        (np.zeros((3,)), [0, 0, 0], 1, "non-empty"),
        (np.zeros((0, 4)), [], 1, "non-empty"),
        (np.zeros((2, 4)), [0], 1, "answer_index"),
        (np.zeros((2, 4)), [0, 4], 1, "answer_index"),
        (np.zeros((2, 4)), [0, -1], 1, "answer_index"),
        (np.zeros((2, 4)), [0, 1.5], 1, "answer_index"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), [0, 1], 1, "finite"),
        (np.zeros((2, 4)), [0, 1], (0,), "ks"),
    ],
)
def test_bad_inputs_raise_clear_errors(scores, index, ks, match):
    with pytest.raises(ValueError, match=match):
        ranking_metrics(scores, index, ks=ks)


def test_docstring_example_runs():
    result = doctest.testmod(dialogue_ranking, verbose=False)
    assert result.attempted > 0 and result.failed == 0
