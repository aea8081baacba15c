"""Private text helpers shared by the vocabulary, the NumPy encoder and the readers.

Words are split the way keras-hub's `WordPieceTokenizer(lowercase=True)` splits
them before its word-piece step: Unicode NFKC + case folding, then runs of letters
and digits, with every punctuation or symbol character as its own token. For ASCII
text the two give the same words, so a vocabulary built here works with both.
"""

import re
import unicodedata

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
RESERVED_TOKENS = (PAD_TOKEN, UNK_TOKEN)

_WORD_RE = re.compile(r"[^\W_]+|[^\w\s]|_")


def split_words(text):
    """Lower-case `text` and split it into words and punctuation marks."""
    return _WORD_RE.findall(unicodedata.normalize("NFKC", text).casefold())


def check_texts(texts, arg="texts"):
    """Return `texts` as a list of str, or raise `ValueError` naming the bad entry."""
    if isinstance(texts, str):
        raise ValueError(
            f"`{arg}` must be a list of strings, not a single string. "
            f"Received: {arg}={texts[:60]!r}"
        )
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(
                f"Every entry of `{arg}` must be a string. Received: {arg}[{i}] of "
                f"type {type(t).__name__}"
            )
    return texts


def check_vocabulary(vocabulary):
    """Validate a vocabulary list: unique strings, "[PAD]" at id 0, "[UNK]" present."""
    if isinstance(vocabulary, str) or not isinstance(vocabulary, (list, tuple)):
        raise ValueError(
            "`vocabulary` must be a list of token strings. Received: "
            f"vocabulary of type {type(vocabulary).__name__}"
        )
    vocabulary = list(vocabulary)
    if len(vocabulary) < 2 or vocabulary[0] != PAD_TOKEN or UNK_TOKEN not in vocabulary:
        raise ValueError(
            f"`vocabulary` must start with {PAD_TOKEN!r} (id 0, the padding id) and "
            f"contain {UNK_TOKEN!r}. Received: vocabulary[:4]={vocabulary[:4]}"
        )
    if len(set(vocabulary)) != len(vocabulary):
        seen, dup = set(), None
        for token in vocabulary:
            if token in seen:
                dup = token
                break
            seen.add(token)
        raise ValueError(
            f"`vocabulary` entries must be unique. Received: {dup!r} twice"
        )
    for i, token in enumerate(vocabulary):
        if not isinstance(token, str) or not token:
            raise ValueError(
                "Every `vocabulary` entry must be a non-empty string. Received: "
                f"vocabulary[{i}]={token!r}"
            )
    return vocabulary


def check_sequence_length(sequence_length):
    if (
        not isinstance(sequence_length, int)
        or isinstance(sequence_length, bool)
        or sequence_length < 1
    ):
        raise ValueError(
            "`sequence_length` must be a positive integer. Received: "
            f"sequence_length={sequence_length!r}"
        )
    return sequence_length
