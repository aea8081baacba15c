import copy
import math
from collections import defaultdict

import numpy as np
import pytest

from keras_mm.metrics import cider_d


def reference_cider_d(refs, hyps, n=4, sigma=6.0):
    """Reference: vrama91's CiderD scorer (df_mode="corpus"), ported to Python 3."""

    def precook(s):
        words = s.split()
        counts = defaultdict(int)
        for k in range(1, n + 1):
            for i in range(len(words) - k + 1):
                counts[tuple(words[i : i + k])] += 1
        return counts

    crefs = [[precook(r) for r in rs] for rs in refs]
    ctest = [precook(h) for h in hyps]
    document_frequency = defaultdict(float)
    for rs in crefs:
        for ngram in set(ngram for ref in rs for (ngram, count) in ref.items()):
            document_frequency[ngram] += 1
    ref_len = np.log(float(len(crefs)))

    def counts2vec(cnts):
        vec = [defaultdict(float) for _ in range(n)]
        length = 0
        norm = [0.0 for _ in range(n)]
        for ngram, term_freq in cnts.items():
            df = np.log(max(1.0, document_frequency[ngram]))
            k = len(ngram) - 1
            vec[k][ngram] = float(term_freq) * (ref_len - df)
            norm[k] += pow(vec[k][ngram], 2)
            if k == 1:
                length += term_freq
        return vec, [np.sqrt(x) for x in norm], length

    def sim(vec_hyp, vec_ref, norm_hyp, norm_ref, length_hyp, length_ref):
        delta = float(length_hyp - length_ref)
        val = np.array([0.0 for _ in range(n)])
        for k in range(n):
            for ngram, count in vec_hyp[k].items():
                val[k] += min(vec_hyp[k][ngram], vec_ref[k][ngram]) * vec_ref[k][ngram]
            if (norm_hyp[k] != 0) and (norm_ref[k] != 0):
                val[k] /= norm_hyp[k] * norm_ref[k]
            assert not math.isnan(val[k])
            val[k] *= np.e ** (-(delta**2) / (2 * sigma**2))
        return val

    scores = []
    for test, rs in zip(ctest, copy.deepcopy(crefs)):
        vec, norm, length = counts2vec(test)
        score = np.array([0.0 for _ in range(n)])
        for ref in rs:
            vec_ref, norm_ref, length_ref = counts2vec(ref)
            score += sim(vec, vec_ref, norm, norm_ref, length, length_ref)
        scores.append(np.mean(score) / len(rs) * 10.0)
    return np.mean(np.array(scores)), np.array(scores)


def test_hand_computed_values():
    # Distinct 4-word captions matched exactly: every order has cosine 1 -> 10.
    refs = [["a b c d"], ["e f g h"]]
    assert cider_d(refs, ["a b c d", "e f g h"]) == pytest.approx(10.0)
    # 3-word captions sharing "a" (idf 0): orders 1-3 have cosine 1, order 4 has
    # no n-grams -> 0; mean 3/4 -> 7.5.
    refs = [["a red circle"], ["a blue square"]]
    assert cider_d(refs, ["a red circle", "a blue square"]) == pytest.approx(7.5)
    # Two identical references: the same per reference, averaged.
    refs = [["a b c d", "a b c d"], ["e f g h"]]
    assert cider_d(refs, ["a b c d", "e f g h"]) == pytest.approx(10.0)
    # Nothing in common -> 0; a single sample has idf 0 everywhere -> 0.
    assert cider_d([["a b"], ["c d"]], ["x y", "z w"]) == 0.0
    assert cider_d([["a b c d"]], ["a b c d"]) == 0.0


def test_length_penalty_uses_the_bigram_count():
    # Hypothesis "a b c d" vs reference "a b c d x x": unigram vector clipped
    # cosine times exp(-(3 - 5)^2 / 72) (lengths are bigram counts).
    refs = [["a b c d x x"], ["p q r s"]]
    mean, per = cider_d(refs, ["a b c d", "p q r s"], return_per_sample=True)
    want_mean, want = reference_cider_d(
        [["a b c d x x"], ["p q r s"]], ["a b c d", "p q r s"]
    )
    np.testing.assert_allclose(per, want, rtol=1e-10)
    assert per[1] == pytest.approx(10.0)
    assert 0 < per[0] < 10 * math.exp(-4 / 72)


def test_matches_reference_on_a_random_corpus():
    rng = np.random.default_rng(0)
    words = "a the dog cat runs on mat red sits big small".split()
    refs = [
        [" ".join(rng.choice(words, rng.integers(3, 10))) for _ in range(5)]
        for _ in range(25)
    ]
    hyps = [" ".join(rng.choice(words, rng.integers(1, 10))) for _ in range(25)]
    hyps[3] = refs[3][0]
    hyps[4] = "dog"  # one word: zero bigram norm, guarded
    mean, per = cider_d(refs, hyps, return_per_sample=True)
    want_mean, want = reference_cider_d(refs, hyps)
    np.testing.assert_allclose(per, want, rtol=1e-10, atol=1e-12)
    assert mean == pytest.approx(want_mean, rel=1e-10)
    assert cider_d(refs, hyps, sigma=2.0) == pytest.approx(
        reference_cider_d(refs, hyps, sigma=2.0)[0], rel=1e-10
    )


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="sigma"):
        cider_d([["a"]], ["a"], sigma=0)
    with pytest.raises(ValueError, match="same length"):
        cider_d([["a"]], ["a", "b"])
    with pytest.raises(ValueError, match=r"references\[0\]"):
        cider_d([[]], ["a"])
