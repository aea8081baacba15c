"""Pure-NumPy word-level encoding of texts to fixed-length token ids."""

import numpy as np

from keras_mm.api_export import keras_mm_export
from keras_mm.data._text import (
    UNK_TOKEN,
    check_sequence_length,
    check_texts,
    check_vocabulary,
    split_words,
)


@keras_mm_export("keras_mm.data.encode_texts")
def encode_texts(texts, vocabulary, sequence_length):
    """Encode texts to padded word ids with NumPy (fast and deterministic).

    The words are split like keras-hub's `WordPieceTokenizer(lowercase=True)`;
    with a whole-word vocabulary (as `build_vocabulary` makes) both give the same
    ids for ASCII text. Unknown words map to `"[UNK]"`; sequences are truncated
    to `sequence_length` and padded with id 0.

    Args:
        texts: list of str.
        vocabulary: list of str. Index = id; `vocabulary[0]` must be `"[PAD]"`.
        sequence_length: int. Length of every output row.

    Returns:
        A dict `{"token_ids": (N, sequence_length) int32, "padding_mask":
        (N, sequence_length) bool}`; the mask is True on real tokens.

    Example:

    >>> out = encode_texts(["a red circle"], ["[PAD]", "[UNK]", "a", "red"], 5)
    >>> out["token_ids"].tolist(), out["padding_mask"].tolist()
    ([[2, 3, 1, 0, 0]], [[True, True, True, False, False]])
    """
    texts = check_texts(texts)
    vocabulary = check_vocabulary(vocabulary)
    sequence_length = check_sequence_length(sequence_length)
    lookup = {token: i for i, token in enumerate(vocabulary)}
    unk = lookup[UNK_TOKEN]
    token_ids = np.zeros((len(texts), sequence_length), dtype="int32")
    cache = {}
    for row, text in enumerate(texts):
        ids = cache.get(text)
        if ids is None:
            ids = [lookup.get(w, unk) for w in split_words(text)][:sequence_length]
            cache[text] = ids
        token_ids[row, : len(ids)] = ids
    return {"token_ids": token_ids, "padding_mask": token_ids != 0}
