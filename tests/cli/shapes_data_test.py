"""The demo's shapes data in the CLI: attribute positives, no held-out leak."""

import itertools

import numpy as np
import pytest

from keras_mm.cli.data import TrainingBatches, describes, load_dataset
from keras_mm.cli.run_config import SHAPES_DEFAULTS
from keras_mm.data.shapes import COLORS, DEFAULT_COLORS, DEFAULT_SHAPES, GRAY

# `load_shapes`' default held-out combinations: colour i with shape i + 1.
HELD_OUT = {
    ("red", "square"),
    ("green", "triangle"),
    ("blue", "plus"),
    ("yellow", "ring"),
}
COLOR_NAMES = (*DEFAULT_COLORS, "gray")


@pytest.fixture(scope="module")
def demo_data():
    """The dataset `make demo` trains on (`keras-mm train --dataset shapes`)."""
    return load_dataset({"kind": "shapes", **SHAPES_DEFAULTS})


def combinations_shown(data, split):
    """The held-out (colour, shape) pairs a split shows, found by four routes.

    Its class labels, its images' attributes, the colour and shape words of its
    captions (every colour word with every shape word of a caption), and the
    colour of its pixels (the shape's mean colour, nearest palette entry) with
    the image's shape.
    """
    part = data[split]
    found = set()
    for label in part["labels"]:
        if label >= 0:
            found.add(tuple(data["class_names"][label].split()))
    for color, shape, _ in part["image_attributes"]:
        found.add((COLOR_NAMES[color], DEFAULT_SHAPES[shape]))
    for caption in part["captions"]:
        words = caption.split()
        colors = [w for w in words if w in COLOR_NAMES]
        shapes = [w for w in words if w in DEFAULT_SHAPES]
        found.update(itertools.product(colors, shapes))
    images = part["images"]
    fg = images.max(axis=-1) > 0.6
    mean = (images * fg[..., None]).sum((1, 2)) / fg.sum((1, 2))[:, None]
    palette = np.array([COLORS[c] for c in DEFAULT_COLORS] + [GRAY])
    nearest = np.argmin(((mean[:, None] - palette[None]) ** 2).sum(-1), axis=1)
    for color, shape in zip(nearest, part["image_attributes"][:, 1]):
        found.add((COLOR_NAMES[color], DEFAULT_SHAPES[shape]))
    return found & HELD_OUT


def test_demo_training_data_never_shows_a_held_out_combination(demo_data):
    assert SHAPES_DEFAULTS["gray_shapes"] > 0  # the demo's gray shapes included
    assert combinations_shown(demo_data, "train") == set()
    assert combinations_shown(demo_data, "test") == set()
    # The same check finds every held-out combination where they are shown.
    assert combinations_shown(demo_data, "compositional") == HELD_OUT
    names = demo_data["class_names"]
    held = {tuple(names[c].split()) for c in demo_data["compositional"]["labels"]}
    assert held == HELD_OUT


def test_describes_matches_brute_force():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 3, size=(9, 3))
    captions = np.where(rng.random((11, 3)) < 0.4, -1, rng.integers(0, 3, (11, 3)))
    expected = [
        [all(c < 0 or c == i for i, c in zip(image, caption)) for caption in captions]
        for image in images
    ]
    got = describes(images, captions)
    assert got.shape == (9, 11) and got.dtype == np.float32
    np.testing.assert_array_equal(got, np.asarray(expected, "float32"))


def test_training_batches_mark_every_fitting_caption_positive():
    spec = {"kind": "shapes", **SHAPES_DEFAULTS, "train_samples": 256}
    data = load_dataset({**spec, "test_samples": 16})
    vocabulary = data["vocabulary"]
    inputs, positives = TrainingBatches(data["train"], 64, seed=0)[0]
    assert positives.shape == (64, 64)
    words = [
        [vocabulary[t] for t in row if t] for row in np.asarray(inputs["token_ids"])
    ]

    def named(caption, names):
        return [w for w in caption if w in names]

    for i, j in itertools.product(range(64), repeat=2):
        same_class = named(words[i], COLOR_NAMES) == named(
            words[j], COLOR_NAMES
        ) and named(words[i], DEFAULT_SHAPES) == named(words[j], DEFAULT_SHAPES)
        sizes_i = named(words[i], ("small", "large"))
        sizes_j = named(words[j], ("small", "large"))
        if not same_class:
            assert positives[i, j] == 0
        elif not sizes_j or sizes_i == sizes_j:
            # Caption j names nothing image i lacks: "a red circle" fits every
            # red circle, "a small red circle" every small one.
            assert positives[i, j] == 1, (words[i], words[j])
        elif sizes_i:
            assert positives[i, j] == 0, (words[i], words[j])
    # Far more positives than the diagonal: other wordings of the same thing.
    assert positives.sum() > 2 * 64
