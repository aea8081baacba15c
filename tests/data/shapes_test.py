import time

import numpy as np
import pytest

from keras_mm.data import load_shapes
from keras_mm.data.shapes import COLORS, GRAY

SMALL = dict(num_train=300, num_test=120, num_compositional=60)


@pytest.fixture(scope="module")
def data():
    return load_shapes(**SMALL)


@pytest.fixture(scope="module")
def gray_data():
    return load_shapes(**SMALL, gray_shapes=0.5)


def foreground_colour(images):
    """Mean colour of each image's shape (the pixels far above the background)."""
    fg = images.max(axis=-1) > 0.6
    return (images * fg[..., None]).sum((1, 2)) / fg.sum((1, 2))[:, None]


def test_structure_shapes_and_dtypes(data):
    assert len(data["class_names"]) == 24
    for split, n in (("train", 300), ("test", 120), ("compositional", 60)):
        inputs = data[split]["inputs"]
        assert sorted(inputs) == ["images", "padding_mask", "token_ids"]
        assert inputs["images"].shape == (n, 32, 32, 3)
        assert inputs["images"].dtype == np.float32
        assert inputs["images"].min() >= 0 and inputs["images"].max() <= 1
        assert inputs["token_ids"].shape == (n, 10)
        assert inputs["token_ids"].dtype == np.int32
        assert inputs["padding_mask"].dtype == bool
        np.testing.assert_array_equal(inputs["padding_mask"], inputs["token_ids"] != 0)
        assert data[split]["labels"].shape == (n,)
        assert data[split]["labels"].dtype == np.int32
        assert len(data[split]["captions"]) == n
        for key in ("attributes", "caption_attributes"):
            assert sorted(data[split][key]) == ["color", "shape", "size"]
            for value in data[split][key].values():
                assert value.shape == (n,) and value.dtype == np.int32
    prompts = data["class_prompts"]
    assert prompts["token_ids"].shape == (24, len(data["prompt_templates"]), 10)
    assert data["vocabulary"][:2] == ["[PAD]", "[UNK]"]
    assert data["attribute_names"] == {
        "color": ["red", "green", "blue", "yellow", "gray"],
        "shape": ["circle", "square", "triangle", "plus", "ring", "bar"],
        "size": ["small", "large"],
    }


@pytest.mark.parametrize("gray", [False, True])
def test_attributes_say_what_the_caption_and_the_label_say(data, gray_data, gray):
    data = gray_data if gray else data
    names = data["attribute_names"]
    for split in ("train", "test", "compositional"):
        part = data[split]
        image, said = part["attributes"], part["caption_attributes"]
        labels = part["labels"]
        seen = labels >= 0
        np.testing.assert_array_equal(image["color"][seen], labels[seen] // 6)
        np.testing.assert_array_equal(image["shape"][seen], labels[seen] % 6)
        np.testing.assert_array_equal(image["color"][~seen], 4)  # gray
        np.testing.assert_array_equal(said["color"], image["color"])
        np.testing.assert_array_equal(said["shape"], image["shape"])
        assert set(said["size"].tolist()) == {-1, 0, 1}
        for i, caption in enumerate(part["captions"]):
            words = caption.split()
            assert names["color"][image["color"][i]] in words
            assert names["shape"][image["shape"][i]] in words
            size_words = [w for w in words if w in names["size"]]
            if said["size"][i] < 0:
                assert not size_words, caption
            else:
                assert size_words == [names["size"][image["size"][i]]]
                assert said["size"][i] == image["size"][i]


def test_captions_and_prompts_name_the_class_and_have_no_unknown_words(data):
    for split in ("train", "test", "compositional"):
        for caption, label, ids in zip(
            data[split]["captions"],
            data[split]["labels"],
            data[split]["inputs"]["token_ids"],
        ):
            color, shape = data["class_names"][label].split()
            assert color in caption.split() and shape in caption.split(), caption
            assert 1 not in ids.tolist()
            decoded = [data["vocabulary"][i] for i in ids if i]
            assert decoded == caption.split()
    assert not np.any(data["class_prompts"]["token_ids"] == 1)
    assert data["class_prompts"]["prompts"][0][0] == "a photo of a red circle"


def test_held_out_combinations_only_in_compositional_split(data):
    held = set(data["held_out_classes"].tolist())
    seen = set(data["seen_classes"].tolist())
    assert len(held) == 4 and not held & seen and len(held | seen) == 24
    assert set(data["train"]["labels"].tolist()) <= seen
    assert set(data["test"]["labels"].tolist()) <= seen
    assert set(data["compositional"]["labels"].tolist()) <= held
    # Every colour and shape word of a held-out class is still seen in training.
    train_words = {w for c in data["train"]["captions"] for w in c.split()}
    for c in held:
        assert set(data["class_names"][c].split()) <= train_words
    # Each split covers its classes.
    assert set(data["train"]["labels"].tolist()) == seen
    assert set(data["compositional"]["labels"].tolist()) == held


def test_gray_shapes_are_gray_training_images_of_every_shape(data, gray_data):
    train = gray_data["train"]
    gray = train["attributes"]["color"] == 4
    assert 0.4 < gray.mean() < 0.6
    np.testing.assert_array_equal(train["labels"] == -1, gray)
    assert set(train["attributes"]["shape"][gray].tolist()) == set(range(6))
    for caption, is_gray in zip(train["captions"], gray):
        assert ("gray" in caption.split()) == is_gray, caption
    # The shape is drawn in gray (equal channels), the others in their colour.
    colour = foreground_colour(train["inputs"]["images"])
    spread = colour.max(-1) - colour.min(-1)
    assert spread[gray].max() < 0.1 and spread[~gray].min() > 0.4
    np.testing.assert_allclose(colour[gray].mean(0), GRAY, atol=0.1)
    # Only the training split has gray images; the rest of the data is the same
    # as without `gray_shapes`, and so is the default vocabulary.
    for split in ("test", "compositional"):
        assert gray_data[split]["captions"] == data[split]["captions"]
        assert "gray" not in " ".join(data["train"]["captions"])
    assert "gray" in gray_data["vocabulary"] and "gray" not in data["vocabulary"]


def test_colour_is_recoverable_from_pixels(data):
    # The shape is the pixels far brighter than the dark background; their mean
    # colour is nearest to the class colour's palette entry in every image.
    palette = np.array([COLORS[c] for c in ("red", "green", "blue", "yellow")])
    images = data["test"]["inputs"]["images"]
    labels = data["test"]["labels"]
    fg = images.max(axis=-1) > 0.6
    assert fg.reshape(len(images), -1).sum(1).min() > 15  # every shape is visible
    means = (images * fg[..., None]).sum((1, 2)) / fg.sum((1, 2))[:, None]
    nearest = np.argmin(((means[:, None] - palette[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(nearest, labels // 6)


def test_shapes_differ_in_area_and_are_inside_the_image():
    data = load_shapes(num_train=600, num_test=0, num_compositional=0, noise=0.0)
    images, labels = data["train"]["inputs"]["images"], data["train"]["labels"]
    fg = images.max(axis=-1) > 0.6
    assert not fg[:, 0].any() and not fg[:, -1].any()  # never touches the border
    assert not fg[:, :, 0].any() and not fg[:, :, -1].any()
    # Foreground area relative to the circle of the same radius is a shape
    # signature: the per-shape medians are distinct.
    area = fg.reshape(len(fg), -1).sum(1)
    medians = [np.median(area[labels % 6 == s]) for s in range(6)]
    assert len({int(m) // 8 for m in medians}) == 6, medians


def test_size_words_match_the_drawn_size():
    data = load_shapes(num_train=400, num_test=0, num_compositional=0, noise=0.0)
    images, labels = data["train"]["inputs"]["images"], data["train"]["labels"]
    area = (images.max(axis=-1) > 0.6).reshape(len(images), -1).sum(1)
    for shape in range(6):
        small = [
            a
            for a, y, c in zip(area, labels, data["train"]["captions"])
            if y % 6 == shape and "small" in c.split()
        ]
        large = [
            a
            for a, y, c in zip(area, labels, data["train"]["captions"])
            if y % 6 == shape and "large" in c.split()
        ]
        assert small and large and max(small) < min(large) * 1.3
        assert np.mean(small) < np.mean(large)


def test_deterministic_and_splits_independent():
    a = load_shapes(**SMALL, seed=3)
    b = load_shapes(**SMALL, seed=3)
    c = load_shapes(num_train=50, num_test=120, num_compositional=60, seed=3)
    d = load_shapes(**SMALL, seed=4)
    for split in ("train", "test", "compositional"):
        for key, value in a[split]["inputs"].items():
            np.testing.assert_array_equal(value, b[split]["inputs"][key])
    # The test split does not depend on the size of the training split.
    np.testing.assert_array_equal(
        a["test"]["inputs"]["images"], c["test"]["inputs"]["images"]
    )
    assert not np.array_equal(a["train"]["labels"], d["train"]["labels"])


def test_thousands_of_images_are_fast():
    start = time.perf_counter()
    data = load_shapes(num_train=4000, num_test=1000, num_compositional=500)
    elapsed = time.perf_counter() - start
    assert data["train"]["inputs"]["images"].shape[0] == 4000
    assert elapsed < 5.0, elapsed  # ~0.5 s here; generous for a busy machine


def test_options():
    data = load_shapes(
        num_train=40,
        num_test=0,
        num_compositional=10,
        image_size=24,
        colors=("orange", "white", "purple"),
        shapes=("diamond", "circle"),
        held_out=["orange circle", ("white", "diamond")],
        sequence_length=12,
    )
    assert data["train"]["inputs"]["images"].shape == (40, 24, 24, 3)
    assert data["test"]["inputs"]["images"].shape == (0, 24, 24, 3)
    assert data["class_names"] == [
        "orange diamond",
        "orange circle",
        "white diamond",
        "white circle",
        "purple diamond",
        "purple circle",
    ]
    assert data["held_out_classes"].tolist() == [1, 2]
    assert "an orange" in " ".join(data["train"]["captions"] + ["an orange"])
    none_held = load_shapes(num_train=10, num_test=0, num_compositional=0, held_out=[])
    assert none_held["held_out_classes"].size == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_train": -1}, "num_train"),
        ({"image_size": 8}, "image_size"),
        ({"colors": ("red", "mauve")}, "colors"),
        ({"shapes": ("circle",)}, "shapes"),
        ({"held_out": ["red hexagon"]}, "held_out"),
        (
            {
                "held_out": [
                    ("red", s)
                    for s in ("circle", "square", "triangle", "plus", "ring", "bar")
                ]
            },
            "red",
        ),
        ({"held_out": [], "num_compositional": 5}, "num_compositional"),
        ({"noise": -0.1}, "noise"),
        ({"size_range": (0.3, 0.2)}, "size_range"),
        ({"size_range": 0.3}, "size_range"),
        ({"gray_shapes": 1.0}, "gray_shapes"),
        ({"gray_shapes": -0.1}, "gray_shapes"),
        ({"gray_shapes": 0.5, "colors": ("red", "white")}, "white"),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_shapes(**{**dict(num_train=4, num_test=0, num_compositional=0), **kwargs})
