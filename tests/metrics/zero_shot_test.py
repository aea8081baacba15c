import numpy as np
import pytest
from keras import ops

from keras_mm.metrics import zero_shot_accuracy, zero_shot_classifier


def oracle_accuracy(scores, labels, k):
    hits = 0
    for row, y in zip(scores, labels):
        # Sorted best first; on ties the true class goes last.
        order = sorted(range(len(row)), key=lambda j: (-row[j], j == y))
        hits += y in order[:k]
    return hits / len(labels)


def test_hand_fixture():
    logits = [[0.1, 0.9, 0.0, 0.2], [0.8, 0.1, 0.3, 0.0], [0.5, 0.5, 0.5, 0.5]]
    got = zero_shot_accuracy(logits, [1, 2, 0], ks=(1, 2, 4))
    assert got == {"top1": 1 / 3, "top2": 2 / 3, "top4": 1.0}


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_oracle(seed):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=(50, 12)), 1).astype("float32")
    labels = rng.integers(0, 12, size=50)
    got = zero_shot_accuracy(ops.convert_to_tensor(scores), labels, ks=(1, 5))
    assert got["top1"] == pytest.approx(oracle_accuracy(scores, labels, 1))
    assert got["top5"] == pytest.approx(oracle_accuracy(scores, labels, 5))


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="labels"):
        zero_shot_accuracy(np.zeros((2, 3)), [0, 3])
    with pytest.raises(ValueError, match="labels"):
        zero_shot_accuracy(np.zeros((2, 3)), [0])
    with pytest.raises(ValueError, match="logits"):
        zero_shot_accuracy(np.zeros(3), [0])
    with pytest.raises(ValueError, match="finite"):
        zero_shot_accuracy(np.full((1, 3), np.inf), [0])


def test_classifier_averages_normalised_prompts():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3, 8)).astype("float32")
    unit = x / np.linalg.norm(x, axis=-1, keepdims=True)
    mean = unit.mean(axis=1)
    want = mean / np.linalg.norm(mean, axis=-1, keepdims=True)
    got = zero_shot_classifier(ops.convert_to_tensor(x))
    assert got.shape == (5, 8) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(zero_shot_classifier(x[:, 0]), unit[:, 0], atol=1e-6)
    with pytest.raises(ValueError, match="prompt_embeddings"):
        zero_shot_classifier(np.zeros((2, 3, 4, 5)))
