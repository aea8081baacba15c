"""Corpus-level BLEU (Papineni et al., 2002), as in pycocoevalcap and NLTK."""

import math

from keras_mm.api_export import keras_mm_export
from keras_mm.metrics._ngrams import check_corpus, check_order, ngram_counts


@keras_mm_export("keras_mm.metrics.bleu_score")
def bleu_score(references, hypotheses, max_order=4):
    """Corpus-level BLEU-N with the brevity penalty.

    Clipped n-gram counts and n-gram totals are summed over the whole corpus
    before dividing (corpus BLEU, not an average of sentence scores):

        p_n = sum_s sum_g min(c_s(g), max_r c_r(g)) / sum_s max(0, |s| - n + 1)
        BP  = 1 if c > r else exp(1 - r / c)
        BLEU = BP * exp(mean_{n=1..N} log p_n)

    where `c` is the total hypothesis length and `r` the sum of, per sample, the
    reference length closest to the hypothesis length (the shorter on a tie): the
    "closest" option of pycocoevalcap's `Bleu` and NLTK's `corpus_bleu`. With any
    `p_n = 0` the score is 0, as in NLTK without smoothing (pycocoevalcap adds
    1e-15 / 1e-9 to every count and returns a tiny positive number instead; the two
    agree to ~1e-9 otherwise).

    Args:
        references: list (one per sample) of lists of reference captions, each a
            str (split on whitespace; tokenize and lower-case beforehand, as
            pycocoevalcap's PTB tokenizer does) or a list of tokens.
        hypotheses: list of generated captions (str or list of tokens).
        max_order: int. N, the longest n-gram (4 for BLEU-4).

    Returns:
        A Python float in [0, 1].

    Example:

    >>> bleu_score([["the cat sat on the mat"]], ["the cat sat on the mat"])
    1.0
    """
    max_order = check_order(max_order)
    refs, hyps = check_corpus(references, hypotheses)
    correct = [0] * max_order
    total = [0] * max_order
    hyp_len = ref_len = 0
    for rs, hyp in zip(refs, hyps):
        counts = ngram_counts(hyp, max_order)
        max_ref = {}
        for r in rs:
            for gram, c in ngram_counts(r, max_order).items():
                max_ref[gram] = max(max_ref.get(gram, 0), c)
        for gram, c in counts.items():
            correct[len(gram) - 1] += min(c, max_ref.get(gram, 0))
        for n in range(max_order):
            total[n] += max(0, len(hyp) - n)
        hyp_len += len(hyp)
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in rs)[1]
    if hyp_len == 0 or min(correct) == 0:
        return 0.0
    log_precision = sum(math.log(c / t) for c, t in zip(correct, total)) / max_order
    brevity = 1.0 if hyp_len > ref_len else math.exp(1.0 - ref_len / hyp_len)
    return float(brevity * math.exp(log_precision))
