import numpy as np
import pytest

from keras_mm.data import (
    build_vocabulary,
    encode_texts,
    make_class_prompts,
    make_tokenizer,
    tokenize_texts,
)


def test_build_vocabulary_orders_by_count_then_word():
    vocab = build_vocabulary(["A red circle.", "a blue circle", "a red ring"])
    assert vocab[:2] == ["[PAD]", "[UNK]"]
    # a: 3, circle: 2, red: 2, then singletons alphabetically ('.' < 'b' < 'r').
    assert vocab[2:] == ["a", "circle", "red", ".", "blue", "ring"]


def test_build_vocabulary_min_count_and_max_size():
    texts = ["a b", "a c", "a b"]
    assert build_vocabulary(texts, min_count=2) == ["[PAD]", "[UNK]", "a", "b"]
    assert build_vocabulary(texts, max_size=3) == ["[PAD]", "[UNK]", "a"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"texts": "a single string"}, "texts"),
        ({"texts": ["ok", 3]}, "texts\\[1\\]"),
        ({"texts": ["a"], "min_count": 0}, "min_count"),
        ({"texts": ["a"], "max_size": 1}, "max_size"),
        ({"texts": ["a"], "reserved_tokens": ["[UNK]", "[PAD]"]}, "reserved_tokens"),
    ],
)
def test_build_vocabulary_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_vocabulary(**kwargs)


def test_encode_texts_pads_truncates_and_maps_unknown_words():
    vocab = ["[PAD]", "[UNK]", "a", "red", "circle", "."]
    out = encode_texts(
        ["A red circle.", "a  GREEN circle", "", "a a a a a a"], vocab, 5
    )
    assert out["token_ids"].dtype == np.int32
    assert out["padding_mask"].dtype == bool
    np.testing.assert_array_equal(
        out["token_ids"],
        [[2, 3, 4, 5, 0], [2, 1, 4, 0, 0], [0, 0, 0, 0, 0], [2, 2, 2, 2, 2]],
    )
    np.testing.assert_array_equal(out["padding_mask"], out["token_ids"] != 0)


@pytest.mark.parametrize(
    "vocab, length, message",
    [
        (["[UNK]", "[PAD]"], 4, "vocabulary"),
        (["[PAD]", "a"], 4, "vocabulary"),
        (["[PAD]", "[UNK]", "a", "a"], 4, "unique"),
        (["[PAD]", "[UNK]"], 0, "sequence_length"),
    ],
)
def test_encode_texts_rejects_bad_arguments(vocab, length, message):
    with pytest.raises(ValueError, match=message):
        encode_texts(["a"], vocab, length)


def test_keras_hub_tokenizer_matches_numpy_encoding():
    texts = [
        "A man riding a horse, on the beach!",
        "Two dogs play-fight in the snow.",
        "an UNSEEN word here",
        "",
    ]
    vocab = build_vocabulary(texts[:2] + ["word"])
    tokenizer = make_tokenizer(vocab, sequence_length=8)
    assert type(tokenizer).__name__ == "WordPieceTokenizer"
    got = tokenize_texts(texts, tokenizer, batch_size=3)
    want = encode_texts(texts, vocab, 8)
    assert got["token_ids"].dtype == np.int32
    np.testing.assert_array_equal(got["token_ids"], want["token_ids"])
    np.testing.assert_array_equal(got["padding_mask"], want["padding_mask"])
    assert got["token_ids"][2].tolist()[:4] == [1, 1, vocab.index("word"), 1]


def test_tokenize_texts_needs_a_sequence_length():
    tokenizer = make_tokenizer(["[PAD]", "[UNK]", "a"], sequence_length=4)
    tokenizer.sequence_length = None
    with pytest.raises(ValueError, match="sequence_length"):
        tokenize_texts(["a"], tokenizer)


def test_make_class_prompts_shapes_and_articles():
    vocab = build_vocabulary(["a an photo of orange red circle"])
    out = make_class_prompts(
        ["red circle", "orange circle"], vocab, 6, ["a photo of a {}", "a {}"]
    )
    assert out["token_ids"].shape == (2, 2, 6)
    assert out["padding_mask"].shape == (2, 2, 6)
    assert out["prompts"][1] == ["a photo of an orange circle", "an orange circle"]
    assert not np.any(out["token_ids"] == 1)  # no unknown word
    with pytest.raises(ValueError, match="template"):
        make_class_prompts(["x"], vocab, 6, ["no placeholder"])
