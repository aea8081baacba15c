import doctest

import numpy as np
import pytest

from keras_mm.data import shape_captions
from keras_mm.data.shape_captions import load_shape_captions
from keras_mm.data.shapes import COLORS


@pytest.fixture(scope="module")
def data():
    return load_shape_captions(num_train=120, num_test=40, seed=3)


def test_structure_shapes_and_dtypes(data):
    vocab = data["vocabulary"]
    assert vocab[:4] == ["[PAD]", "[UNK]", "[START]", "[END]"]
    assert len(vocab) < 50 and len(set(vocab)) == len(vocab)
    assert (data["start_token_id"], data["end_token_id"]) == (2, 3)
    for split, n in (("train", 120), ("test", 40)):
        inputs = data[split]["inputs"]
        assert sorted(inputs) == ["images", "padding_mask", "token_ids"]
        assert inputs["images"].shape == (n, 32, 32, 3)
        assert inputs["images"].dtype == np.float32
        assert 0.0 <= inputs["images"].min() and inputs["images"].max() <= 1.0
        assert inputs["token_ids"].shape == (n, 16)
        assert inputs["token_ids"].dtype == np.int32
        np.testing.assert_array_equal(inputs["padding_mask"], inputs["token_ids"] != 0)
        assert len(data[split]["captions"]) == len(data[split]["scenes"]) == n


def test_token_ids_are_start_caption_end_without_unknown_words(data):
    vocab = data["vocabulary"]
    for split in ("train", "test"):
        for ids, caption in zip(
            data[split]["inputs"]["token_ids"], data[split]["captions"]
        ):
            real = ids[ids != 0].tolist()
            assert real[0] == 2 and real[-1] == 3 and 1 not in real
            assert [vocab[i] for i in real[1:-1]] == caption.split()
            # Right-padded: no padding before the end token.
            assert np.all(ids[: len(real)] != 0)


def test_captions_describe_the_pixels(data):
    """Each named object has pixels of its colour in its horizontal band."""
    bands = {"left": (0, 16), "middle": (9, 23), "right": (16, 32)}
    for split in ("train", "test"):
        images = data[split]["inputs"]["images"]
        for image, scene, caption in zip(
            images, data[split]["scenes"], data[split]["captions"]
        ):
            parts = caption.split(" and ")
            assert len(parts) == len(scene)
            for (color, shape, position), part in zip(scene, parts):
                phrase = {"left": "on the left", "right": "on the right"}.get(
                    position, "in the middle"
                )
                assert part == f"a {color} {shape} {phrase}"
                lo, hi = bands[position]
                target = np.asarray(COLORS[color])
                dist = np.abs(image[:, lo:hi] / image[:, lo:hi].max() - target)
                close = np.all(dist < 0.3, axis=-1)
                assert close.sum() >= 12, (caption, close.sum())
            if len(scene) == 2:
                assert [o[2] for o in scene] == ["left", "right"]
                assert scene[0][1] != scene[1][1]


def test_deterministic_and_splits_differ():
    a = load_shape_captions(num_train=10, num_test=10, seed=5)
    b = load_shape_captions(num_train=10, num_test=10, seed=5)
    c = load_shape_captions(num_train=10, num_test=10, seed=6)
    np.testing.assert_array_equal(
        a["train"]["inputs"]["images"], b["train"]["inputs"]["images"]
    )
    assert a["train"]["captions"] == b["train"]["captions"]
    assert a["train"]["captions"] != c["train"]["captions"]
    assert a["train"]["captions"] != a["test"]["captions"]


def test_one_object_scenes_and_options():
    data = load_shape_captions(
        num_train=30,
        num_test=0,
        image_size=24,
        max_objects=1,
        colors=("red", "blue"),
        shapes=("circle", "ring"),
        sequence_length=8,
    )
    assert data["train"]["inputs"]["images"].shape == (30, 24, 24, 3)
    assert data["test"]["inputs"]["images"].shape == (0, 24, 24, 3)
    assert all(" and " not in c for c in data["train"]["captions"])
    assert {s[0][2] for s in data["train"]["scenes"]} == {"left", "middle", "right"}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_train": -1}, "num_train"),
        ({"image_size": 8}, "image_size"),
        ({"sequence_length": 10}, "sequence_length"),
        ({"max_objects": 3}, "max_objects"),
        ({"colors": ("red", "pink")}, "colors"),
        ({"shapes": ("circle",)}, "shapes"),
        ({"noise": -0.1}, "noise"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_shape_captions(**{"num_train": 20, "num_test": 0, **kwargs})


def test_docstring_example_runs():
    result = doctest.testmod(shape_captions, verbose=False)
    assert result.attempted > 0 and result.failed == 0
