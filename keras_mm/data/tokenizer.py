"""A keras-hub word tokenizer built from a vocabulary, and a batch helper."""

import numpy as np

from keras_mm.api_export import keras_mm_export
from keras_mm.data._text import (
    UNK_TOKEN,
    check_sequence_length,
    check_texts,
    check_vocabulary,
)


@keras_mm_export("keras_mm.data.make_tokenizer")
def make_tokenizer(vocabulary, sequence_length):
    """Make a keras-hub word-level tokenizer from a vocabulary.

    Returns `keras_hub.tokenizers.WordPieceTokenizer(vocabulary, sequence_length,
    lowercase=True, oov_token="[UNK]")`. With a whole-word vocabulary (no `##`
    pieces, as `build_vocabulary` makes) it is a word-level tokenizer: a word not in
    the vocabulary becomes one `"[UNK]"`, punctuation marks are separate tokens and
    outputs are padded with id 0. It works offline, saves its vocabulary as an asset
    and can sit in a keras-hub preprocessor. keras-hub is imported on first use.

    Args:
        vocabulary: list of str. Index = id; `vocabulary[0]` must be `"[PAD]"`.
        sequence_length: int. Output length (truncate / pad).

    Returns:
        A `keras_hub.tokenizers.WordPieceTokenizer`.
    """
    vocabulary = check_vocabulary(vocabulary)
    sequence_length = check_sequence_length(sequence_length)
    import keras_hub

    return keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=vocabulary,
        sequence_length=sequence_length,
        lowercase=True,
        oov_token=UNK_TOKEN,
    )


@keras_mm_export("keras_mm.data.tokenize_texts")
def tokenize_texts(texts, tokenizer, batch_size=4096):
    """Tokenize texts with a keras-hub tokenizer into padded NumPy arrays.

    Args:
        texts: list of str.
        tokenizer: a keras-hub tokenizer with a `sequence_length` (e.g. from
            `make_tokenizer`) whose padding id is 0.
        batch_size: int. Texts tokenized per call.

    Returns:
        A dict `{"token_ids": (N, T) int32, "padding_mask": (N, T) bool}`.
    """
    texts = check_texts(texts)
    length = getattr(tokenizer, "sequence_length", None)
    if not isinstance(length, int) or length < 1:
        raise ValueError(
            "`tokenizer` must have an integer `sequence_length` so that outputs are "
            f"padded. Received: sequence_length={length!r}"
        )
    from keras import ops

    chunks = [np.zeros((0, length), dtype="int32")]
    for start in range(0, len(texts), batch_size):
        ids = tokenizer(texts[start : start + batch_size])
        chunks.append(np.asarray(ops.convert_to_numpy(ids), dtype="int32"))
    token_ids = np.concatenate(chunks, axis=0)
    return {"token_ids": token_ids, "padding_mask": token_ids != 0}
