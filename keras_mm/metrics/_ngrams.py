"""Private n-gram helpers for BLEU and CIDEr-D."""

import collections


def as_tokens(text, arg):
    """A caption as a list of tokens: a str is split on whitespace."""
    if isinstance(text, str):
        return text.split()
    if isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
        return list(text)
    raise ValueError(
        f"`{arg}` must be a str or a list of str tokens. Received: {str(text)[:80]!r}"
    )


def ngram_counts(tokens, max_order):
    """Counter of all n-grams (tuples) of orders 1..max_order."""
    counts = collections.Counter()
    for n in range(1, max_order + 1):
        for i in range(len(tokens) - n + 1):
            counts[tuple(tokens[i : i + n])] += 1
    return counts


def check_corpus(references, hypotheses):
    """Validate and tokenize: (list of token lists, list of lists of token lists)."""
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise ValueError(
            "`references` and `hypotheses` must be lists (one entry per sample), "
            "not a single string."
        )
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(
            "`references` and `hypotheses` must be non-empty and of the same length. "
            f"Received: {len(references)} reference lists and {len(hypotheses)} "
            "hypotheses"
        )
    hyps = [as_tokens(h, f"hypotheses[{i}]") for i, h in enumerate(hypotheses)]
    refs = []
    for i, rs in enumerate(references):
        if isinstance(rs, str) or not isinstance(rs, (list, tuple)) or not rs:
            raise ValueError(
                f"`references[{i}]` must be a non-empty list of reference captions. "
                f"Received: {str(rs)[:80]!r}"
            )
        refs.append([as_tokens(r, f"references[{i}][{j}]") for j, r in enumerate(rs)])
    return refs, hyps


def check_order(max_order):
    if not isinstance(max_order, int) or isinstance(max_order, bool) or max_order < 1:
        raise ValueError(
            f"`max_order` must be a positive integer. Received: {max_order!r}"
        )
    return max_order
