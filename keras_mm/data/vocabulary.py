"""Build a word-level vocabulary from captions."""

import collections

from keras_mm.api_export import keras_mm_export
from keras_mm.data._text import RESERVED_TOKENS, check_texts, split_words


@keras_mm_export("keras_mm.data.build_vocabulary")
def build_vocabulary(texts, min_count=1, max_size=None, reserved_tokens=None):
    """Build a word-level vocabulary from a list of captions.

    Words are split as keras-hub's `WordPieceTokenizer(lowercase=True)` splits
    them (case-folded; each punctuation mark is its own token), counted, and
    sorted by decreasing count then alphabetically, so the result is deterministic.
    The reserved tokens come first: `"[PAD]"` has id 0 (the padding id) and
    `"[UNK]"` id 1.

    Args:
        texts: list of str. The captions (or questions).
        min_count: int. Words seen fewer times are left out (they map to
            `"[UNK]"`).
        max_size: int or None. Largest vocabulary size, reserved tokens included.
        reserved_tokens: list of str or None. Tokens placed first; default
            `["[PAD]", "[UNK]"]`. Must start with `"[PAD]"` and contain `"[UNK]"`.

    Returns:
        A list of str: the vocabulary, index = token id. Use it with
        `keras_mm.data.encode_texts` (NumPy) or `keras_mm.data.make_tokenizer`
        (keras-hub).

    Example:

    >>> build_vocabulary(["A red circle.", "a blue circle"])
    ['[PAD]', '[UNK]', 'a', 'circle', '.', 'blue', 'red']
    """
    texts = check_texts(texts)
    if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count < 1:
        raise ValueError(
            f"`min_count` must be a positive integer. Received: min_count={min_count!r}"
        )
    reserved = list(RESERVED_TOKENS if reserved_tokens is None else reserved_tokens)
    if not reserved or reserved[0] != RESERVED_TOKENS[0] or "[UNK]" not in reserved:
        raise ValueError(
            "`reserved_tokens` must start with '[PAD]' and contain '[UNK]'. "
            f"Received: reserved_tokens={reserved_tokens!r}"
        )
    if max_size is not None and (
        not isinstance(max_size, int)
        or isinstance(max_size, bool)
        or max_size < len(reserved)
    ):
        raise ValueError(
            f"`max_size` must be None or an integer >= {len(reserved)} (the reserved "
            f"tokens). Received: max_size={max_size!r}"
        )
    counts = collections.Counter()
    for text in texts:
        counts.update(split_words(text))
    words = sorted(
        (w for w, c in counts.items() if c >= min_count and w not in reserved),
        key=lambda w: (-counts[w], w),
    )
    vocabulary = reserved + words
    if max_size is not None:
        vocabulary = vocabulary[:max_size]
    return vocabulary
