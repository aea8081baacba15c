"""CIDEr-D (Vedantam et al., 2015), as computed by pycocoevalcap / vrama91's CiderD."""

import math

import numpy as np

from keras_mm.api_export import keras_mm_export
from keras_mm.metrics._ngrams import check_corpus, check_order, ngram_counts


def _tfidf(counts, doc_freq, log_num_docs, max_order):
    """Per-order tf-idf vectors, their norms and the caption "length"."""
    vectors = [{} for _ in range(max_order)]
    norms = [0.0] * max_order
    length = 0
    for gram, tf in counts.items():
        n = len(gram) - 1
        weight = tf * (log_num_docs - math.log(max(1.0, doc_freq.get(gram, 0.0))))
        vectors[n][gram] = weight
        norms[n] += weight * weight
        if n == 1:  # pycocoevalcap counts bigrams as the length; kept.
            length += tf
    return vectors, [math.sqrt(x) for x in norms], length


@keras_mm_export("keras_mm.metrics.cider_d")
def cider_d(references, hypotheses, sigma=6.0, max_order=4, return_per_sample=False):
    """CIDEr-D: consensus of a caption with its references, tf-idf weighted.

    For each sample, the n-grams (n = 1..4) of the hypothesis and of each
    reference are weighted by tf-idf, where the document frequency of an n-gram is
    the number of samples whose references contain it and the idf is
    `log(num_samples) - log(max(1, df))`. Per order, the score is the cosine of the
    hypothesis and reference vectors with the hypothesis weights clipped to the
    reference ones (`sum_g min(h_g, r_g) r_g / (|h| |r|)`), times the Gaussian
    length penalty `exp(-(l_h - l_r)^2 / (2 sigma^2))`; the orders are averaged, the
    references averaged and the result multiplied by 10. This is the
    `corpus` mode of pycocoevalcap's `Cider` / vrama91's `CiderD`, their quirk of
    using the bigram count as the length included; a zero norm gives 0 for that
    order (as CiderD does).

    Args:
        references: list (one per sample) of lists of reference captions (str,
            split on whitespace, or lists of tokens). Tokenize and lower-case
            beforehand.
        hypotheses: list of generated captions.
        sigma: float. Width of the length penalty (6 in CIDEr-D).
        max_order: int. Longest n-gram.
        return_per_sample: bool. Also return the per-sample scores.

    Returns:
        A Python float (the corpus mean, in [0, 10]); or `(mean, per_sample)`.
        The document frequencies come from the given corpus, so a single sample
        scores 0 (its idf is 0): score a whole test set at once.

    Example:

    >>> refs = [["a red circle"], ["a blue square"]]
    >>> round(cider_d(refs, ["a red circle", "a blue square"]), 6)
    7.5
    """
    max_order = check_order(max_order)
    if not sigma > 0:
        raise ValueError(f"`sigma` must be > 0. Received: sigma={sigma!r}")
    refs, hyps = check_corpus(references, hypotheses)
    ref_counts = [[ngram_counts(r, max_order) for r in rs] for rs in refs]
    doc_freq = {}
    for counts in ref_counts:
        for gram in set().union(*counts):
            doc_freq[gram] = doc_freq.get(gram, 0.0) + 1.0
    log_num_docs = math.log(float(len(refs)))
    scores = np.zeros(len(hyps))
    for s, (hyp, counts) in enumerate(zip(hyps, ref_counts)):
        vec, norm, length = _tfidf(
            ngram_counts(hyp, max_order), doc_freq, log_num_docs, max_order
        )
        total = np.zeros(max_order)
        for ref in counts:
            rvec, rnorm, rlength = _tfidf(ref, doc_freq, log_num_docs, max_order)
            penalty = math.exp(-((length - rlength) ** 2) / (2.0 * sigma**2))
            for n in range(max_order):
                val = sum(
                    min(w, rvec[n].get(g, 0.0)) * rvec[n].get(g, 0.0)
                    for g, w in vec[n].items()
                )
                if norm[n] != 0 and rnorm[n] != 0:
                    val /= norm[n] * rnorm[n]
                total[n] += val * penalty
        scores[s] = 10.0 * total.mean() / len(counts)
    mean = float(scores.mean())
    return (mean, scores) if return_per_sample else mean
