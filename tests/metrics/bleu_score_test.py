import math
from collections import defaultdict

import numpy as np
import pytest

from keras_mm.metrics import bleu_score


def coco_bleu(refs, hyps, n=4):
    """Reference: pycocoevalcap's BleuScorer(option="closest"), ported to Python 3."""

    def precook(words):
        counts = defaultdict(int)
        for k in range(1, n + 1):
            for i in range(len(words) - k + 1):
                counts[tuple(words[i : i + k])] += 1
        return len(words), counts

    small, tiny = 1e-9, 1e-15
    totals = {"testlen": 0, "reflen": 0, "guess": [0] * n, "correct": [0] * n}
    for rs, hyp in zip(refs, hyps):
        reflens, maxcounts = [], {}
        for ref in rs:
            rl, counts = precook(ref.split())
            reflens.append(rl)
            for ngram, count in counts.items():
                maxcounts[ngram] = max(maxcounts.get(ngram, 0), count)
        testlen, counts = precook(hyp.split())
        totals["testlen"] += testlen
        totals["reflen"] += min((abs(rl - testlen), rl) for rl in reflens)[1]
        for k in range(n):
            totals["guess"][k] += max(0, testlen - k)
        for ngram, count in counts.items():
            totals["correct"][len(ngram) - 1] += min(maxcounts.get(ngram, 0), count)
    bleu = 1.0
    for k in range(n):
        bleu *= (totals["correct"][k] + tiny) / (totals["guess"][k] + small)
    bleu = bleu ** (1.0 / n)
    ratio = (totals["testlen"] + tiny) / (totals["reflen"] + small)
    if ratio < 1:
        bleu *= math.exp(1 - 1 / ratio)
    return bleu


REFS = [
    [
        "a man is riding a horse on the beach",
        "a person rides a horse near the sea",
        "someone riding a brown horse along the shore",
    ],
    ["two dogs play in the snow", "a pair of dogs playing in snow"],
    [
        "a red bus drives down the street",
        "a double decker bus on a city street",
        "the red bus is on the road",
    ],
]
HYPS = [
    "a man riding a horse on the beach",
    "two dogs are playing in the snow",
    "a red bus on the street",
]


def test_hand_computed_values():
    # Papineni et al.'s example: clipped unigram precision 2/7, no brevity penalty.
    assert bleu_score(
        [["the cat is on the mat"]], ["the the the the the the the"], max_order=1
    ) == pytest.approx(2 / 7)
    # Perfect precision, hypothesis 2 words vs reference 6: BP = exp(1 - 6/2).
    assert bleu_score([["the cat sat on the mat"]], ["the cat"], max_order=2) == (
        pytest.approx(math.exp(-2.0))
    )
    # The closest reference length is used (5, not the average 7.5)...
    assert bleu_score(
        [["a b c d e", "a b c d e f g h i j"]], ["a b c d"], max_order=1
    ) == pytest.approx(math.exp(1 - 5 / 4))
    # ... and on a tie the shorter one (2, not 6): no brevity penalty.
    assert bleu_score([["a b", "a b c d e f"]], ["a b c d"], max_order=1) == 1.0
    assert bleu_score([["x y z w"]], ["a b c d"]) == 0.0
    assert bleu_score([["x y z w v"]], ["x y z q v"]) == 0.0  # no 4-gram match


def test_matches_pycocoevalcap_reference():
    for n in (1, 2, 3, 4):
        got = bleu_score(REFS, HYPS, max_order=n)
        assert got == pytest.approx(coco_bleu(REFS, HYPS, n), rel=1e-7), n
    rng = np.random.default_rng(0)
    words = "a the dog cat runs on mat red sits".split()
    refs = [
        [" ".join(rng.choice(words, rng.integers(3, 9))) for _ in range(3)]
        for _ in range(30)
    ]
    hyps = []
    for rs in refs:  # a reference with a few words changed, dropped or added
        hyp = rs[0].split()
        for i in rng.choice(len(hyp), 2):
            hyp[i] = rng.choice(words)
        hyps.append(
            " ".join(
                hyp[: rng.integers(2, len(hyp) + 1)] + ["mat"] * rng.integers(0, 2)
            )
        )
    assert min(bleu_score(refs, hyps, max_order=4), 1) > 0  # every order matches
    assert bleu_score(refs, hyps) == pytest.approx(coco_bleu(refs, hyps), rel=1e-7)


def test_is_corpus_level_and_accepts_tokens():
    # Not the mean of sentence scores.
    sentence = [bleu_score([r], [h]) for r, h in zip(REFS, HYPS)]
    assert bleu_score(REFS, HYPS) != pytest.approx(float(np.mean(sentence)))
    tokens = bleu_score(
        [[r.split() for r in rs] for rs in REFS], [h.split() for h in HYPS]
    )
    assert tokens == bleu_score(REFS, HYPS)


def test_matches_nltk_when_installed():
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    refs = [[r.split() for r in rs] for rs in REFS]
    hyps = [h.split() for h in HYPS]
    assert bleu_score(refs, hyps) == pytest.approx(nltk_bleu.corpus_bleu(refs, hyps))


@pytest.mark.parametrize(
    "refs, hyps, message",
    [
        ([["a"]], "a", "single string"),
        ([["a"]], ["a", "b"], "same length"),
        (["a"], ["a"], r"references\[0\]"),
        ([[3]], ["a"], r"references\[0\]\[0\]"),
        ([["a"]], [None], r"hypotheses\[0\]"),
    ],
)
def test_rejects_bad_inputs(refs, hyps, message):
    with pytest.raises(ValueError, match=message):
        bleu_score(refs, hyps)
    with pytest.raises(ValueError, match="max_order"):
        bleu_score([["a"]], ["a"], max_order=0)
