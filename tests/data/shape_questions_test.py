import collections
import doctest
import importlib

import numpy as np
import pytest

from keras_mm.data.answer_scores import make_answer_scores
from keras_mm.data.shape_questions import load_shape_questions
from keras_mm.data.shapes import COLORS

SMALL = dict(num_train=300, num_test=120)


@pytest.fixture(scope="module")
def data():
    return load_shape_questions(**SMALL)


def colour_pixels(image, colors, threshold=0.5):
    """Pixel count per colour name: bright pixels, nearest palette direction."""
    pixels = image.reshape(-1, 3)
    bright = pixels[pixels.max(-1) > threshold]
    palette = np.asarray([COLORS[c] for c in colors])
    palette = palette / np.linalg.norm(palette, axis=-1, keepdims=True)
    nearest = np.argmax(
        bright @ palette.T / np.linalg.norm(bright, axis=-1)[:, None], -1
    )
    return {c: int(np.sum(nearest == i)) for i, c in enumerate(colors)}


def test_structure_shapes_and_dtypes(data):
    assert data["answer_vocabulary"] == [
        "red", "green", "blue", "yellow", "circle", "square", "triangle",
        "0", "1", "2", "3",
    ]  # fmt: skip
    assert data["question_types"] == ("color", "shape", "count")
    assert data["vocabulary"][:2] == ["[PAD]", "[UNK]"]
    for split, n in (("train", 300), ("test", 120)):
        s = data[split]
        assert sorted(s["inputs"]) == ["images", "padding_mask", "token_ids"]
        images = s["inputs"]["images"]
        assert images.shape == (n, 24, 24, 3) and images.dtype == np.float32
        assert images.min() >= 0 and images.max() <= 1
        assert s["inputs"]["token_ids"].shape == (n, 8)
        assert s["inputs"]["token_ids"].dtype == np.int32
        np.testing.assert_array_equal(
            s["inputs"]["padding_mask"], s["inputs"]["token_ids"] != 0
        )
        assert s["answers"].shape == (n,) and s["answers"].dtype == np.int32
        assert s["question_types"].dtype == np.int32
        assert len(s["questions"]) == len(s["answer_texts"]) == len(s["scenes"]) == n
        texts = [data["answer_vocabulary"][i] for i in s["answers"]]
        assert texts == s["answer_texts"]


def test_answers_follow_from_the_scenes(data):
    for split in ("train", "test"):
        s = data[split]
        for question, answer, scene in zip(
            s["questions"], s["answer_texts"], s["scenes"]
        ):
            words = question.rstrip("?").split()
            colors = [c for c, _ in scene]
            shapes = [sh for _, sh in scene]
            assert 1 <= len(scene) <= 3
            if question.startswith("what colour"):
                shape = words[-1]
                assert shapes.count(shape) == 1, (question, scene)
                assert scene[shapes.index(shape)][0] == answer
            elif question.startswith("what shape"):
                color = words[-1]
                assert colors.count(color) == 1, (question, scene)
                assert scene[colors.index(color)][1] == answer
            else:
                shape = words[-1][:-1]  # "squares" -> "square"
                assert str(shapes.count(shape)) == answer, (question, scene)


def test_images_show_the_scene_colours(data):
    colors = ("red", "green", "blue", "yellow")
    s = data["test"]
    for image, scene in zip(s["inputs"]["images"], s["scenes"]):
        counts = colour_pixels(image, colors)
        present = {c for c, _ in scene}
        for c in colors:
            if c in present:
                assert counts[c] >= 8, (scene, counts)
            else:
                assert counts[c] <= 2, (scene, counts)


def test_question_types_and_count_answers_are_balanced():
    data = load_shape_questions(num_train=1200, num_test=0)
    s = data["train"]
    kinds = np.bincount(s["question_types"], minlength=3) / 1200
    assert np.all(kinds > 0.28), kinds
    counts = collections.Counter(
        a for a, k in zip(s["answer_texts"], s["question_types"]) if k == 2
    )
    total = sum(counts.values())
    assert sorted(counts) == ["0", "1", "2", "3"]
    assert min(counts.values()) / total > 0.15, counts


def test_tokens_decode_to_the_questions(data):
    vocabulary = data["vocabulary"]
    for question, ids in zip(
        data["train"]["questions"], data["train"]["inputs"]["token_ids"]
    ):
        assert 1 not in ids.tolist()
        decoded = [vocabulary[i] for i in ids if i]
        assert " ".join(decoded) == question.replace("?", " ?")


def test_deterministic_and_splits_differ():
    a = load_shape_questions(num_train=20, num_test=10, seed=3)
    b = load_shape_questions(num_train=20, num_test=10, seed=3)
    c = load_shape_questions(num_train=20, num_test=10, seed=4)
    np.testing.assert_array_equal(
        a["train"]["inputs"]["images"], b["train"]["inputs"]["images"]
    )
    assert a["train"]["questions"] == b["train"]["questions"]
    assert not np.allclose(
        a["train"]["inputs"]["images"], c["train"]["inputs"]["images"]
    )
    assert not np.allclose(
        a["train"]["inputs"]["images"][:10], a["test"]["inputs"]["images"]
    )


def test_options():
    data = load_shape_questions(
        num_train=30,
        num_test=0,
        image_size=32,
        max_objects=4,
        colors=("red", "blue"),
        shapes=("circle", "ring"),
        question_types=("count",),
        noise=0.0,
    )
    assert data["answer_vocabulary"] == ["0", "1", "2", "3", "4"]
    assert data["train"]["inputs"]["images"].shape == (30, 32, 32, 3)
    assert set(data["train"]["question_types"].tolist()) == {0}
    assert all(q.startswith("how many") for q in data["train"]["questions"])
    assert data["test"]["inputs"]["images"].shape == (0, 32, 32, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_train=-1), "num_train"),
        (dict(image_size=8), "image_size"),
        (dict(image_size=25), "image_size"),
        (dict(max_objects=5), "max_objects"),
        (dict(colors=("red",)), "colors"),
        (dict(shapes=("circle", "hexagon")), "shapes"),
        (dict(question_types=("why",)), "question_types"),
        (dict(question_types=()), "question_types"),
        (dict(noise=-0.1), "noise"),
        (dict(sequence_length=0), "sequence_length"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_shape_questions(**{"num_train": 2, "num_test": 2, **kwargs})


def test_make_answer_scores():
    vocabulary = ["2", "3", "red", "blue"]
    scores = make_answer_scores(
        [["2"] * 7 + ["3"] * 2 + ["red"], "blue", ["zebra"]], vocabulary
    )
    np.testing.assert_allclose(
        scores,
        [[1.0, 2 / 3, 1 / 3, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]],
        rtol=1e-6,
    )
    assert scores.dtype == np.float32
    with pytest.raises(ValueError, match="answers"):
        make_answer_scores("red", vocabulary)
    with pytest.raises(ValueError, match="answers\\[0\\]"):
        make_answer_scores([[]], vocabulary)
    with pytest.raises(ValueError, match="answer_vocabulary"):
        make_answer_scores(["red"], [])


@pytest.mark.parametrize(
    "name",
    [
        "keras_mm.data.shape_questions",
        "keras_mm.data.moving_shapes_videos",
        "keras_mm.data.answer_scores",
    ],
)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), verbose=False)
    assert result.attempted > 0 and result.failed == 0
