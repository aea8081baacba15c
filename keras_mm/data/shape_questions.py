"""A procedural visual question answering dataset of coloured-shape scenes."""

import numpy as np

from keras_mm.api_export import keras_mm_export
from keras_mm.data._scenes import (
    add_noise,
    background,
    check_colors_shapes,
    check_count,
    check_noise,
    check_question_types,
    draw_objects,
    plural,
    question_dataset,
)
from keras_mm.data.vocabulary import build_vocabulary

QUESTION_TYPES = ("color", "shape", "count")
TEMPLATES = {
    "color": "what colour is the {shape}?",
    "shape": "what shape is {color}?",
    "count": "how many {shapes}?",
}
DEFAULT_COLORS = ("red", "green", "blue", "yellow")
DEFAULT_SHAPES = ("circle", "square", "triangle")


def _scene(rng, max_objects, num_colors, num_shapes, image_size, count=None):
    """1..max_objects objects in distinct cells of a 2x2 grid.

    With `count=(shape, c)`, exactly `c` objects have that shape (so that the
    answers of counting questions are uniform over 0..max_objects).
    """
    cell = image_size // 2
    if count is None:
        k = int(rng.integers(1, max_objects + 1))
        kinds = rng.integers(num_shapes, size=k)
    else:
        target, c = count
        k = int(rng.integers(max(c, 1), max_objects + 1))
        others = [s for s in range(num_shapes) if s != target]
        kinds = [target] * c + [int(rng.choice(others)) for _ in range(k - c)]
    cells = rng.permutation(4)[:k]
    objects = []
    for c, shape in zip(cells, kinds):
        r = rng.uniform(0.3, 0.4) * cell
        cx = (c % 2) * cell + rng.uniform(r, cell - 1 - r)
        cy = (c // 2) * cell + rng.uniform(r, cell - 1 - r)
        color = int(rng.integers(num_colors))
        objects.append((color, int(shape), cx, cy, r))
    return objects


def _question(rng, kind, objects, colors, shapes, count_shape=None):
    """(question, answer) of type `kind` about `objects`, or None if not askable."""
    shape_counts = np.bincount([o[1] for o in objects], minlength=len(shapes))
    color_counts = np.bincount([o[0] for o in objects], minlength=len(colors))
    if kind == "color":
        unique = np.flatnonzero(shape_counts == 1)
        if not unique.size:
            return None
        shape = int(rng.choice(unique))
        color = next(o[0] for o in objects if o[1] == shape)
        return TEMPLATES["color"].format(shape=shapes[shape]), colors[color]
    if kind == "shape":
        unique = np.flatnonzero(color_counts == 1)
        if not unique.size:
            return None
        color = int(rng.choice(unique))
        shape = next(o[1] for o in objects if o[0] == color)
        return TEMPLATES["shape"].format(color=colors[color]), shapes[shape]
    # count: the scene was drawn with `count=(shape, c)`, c uniform
    shape = count_shape
    question = TEMPLATES["count"].format(shapes=plural(shapes[shape]))
    return question, str(int(shape_counts[shape]))


def _all_questions(colors, shapes):
    return (
        [TEMPLATES["color"].format(shape=s) for s in shapes]
        + [TEMPLATES["shape"].format(color=c) for c in colors]
        + [TEMPLATES["count"].format(shapes=plural(s)) for s in shapes]
    )


@keras_mm_export("keras_mm.data.load_shape_questions")
def load_shape_questions(
    num_train=3000,
    num_test=600,
    image_size=24,
    max_objects=3,
    colors=DEFAULT_COLORS,
    shapes=DEFAULT_SHAPES,
    question_types=QUESTION_TYPES,
    sequence_length=8,
    noise=0.03,
    seed=0,
):
    """Load a procedural VQA dataset: questions about scenes of coloured shapes.

    Each image shows 1 to `max_objects` solid shapes (circle, square, ...) of
    random colours, each in its own cell of a 2 x 2 grid, on a dark noisy
    background (drawn like `load_shapes`). Each image comes with one question
    and its one-word answer:

    - `"color"`: "what colour is the circle?" (asked about a shape that occurs
      exactly once in the scene) -> a colour;
    - `"shape"`: "what shape is red?" (a colour that occurs exactly once) -> a
      shape;
    - `"count"`: "how many squares?" (scenes are drawn so that
      the count is uniform over 0..max_objects) -> "0", "1", ...

    Question types are drawn uniformly, so none dominates. Answering needs both
    modalities: the question alone gives only the answer prior of its type,
    the image alone does not say what is asked. Everything is generated with
    NumPy from `seed` (train and test from separate streams) in about a second.

    Args:
        num_train: int. Training examples.
        num_test: int. Held-out examples.
        image_size: int >= 16, even. Images are `(image_size, image_size, 3)`.
        max_objects: int in [1, 4]. Most shapes in one scene.
        colors: list of >= 2 colour names (see `keras_mm.data.load_shapes`).
        shapes: list of >= 2 shape names.
        question_types: non-empty subset of `("color", "shape", "count")`.
        sequence_length: int. Token ids per question (padded with 0).
        noise: float >= 0. Standard deviation of the pixel noise.
        seed: int. The data are a deterministic function of the arguments.

    Returns:
        A dict:
        - `"train"`, `"test"`: each a dict with `"inputs"` (`{"images": (N, S,
          S, 3) float32 in [0, 1], "token_ids": (N, T) int32, "padding_mask":
          (N, T) bool}`), `"answers"` (`(N,)` int32 ids into
          `answer_vocabulary`), `"answer_texts"`, `"questions"` (lists of N
          str), `"question_types"` (`(N,)` int32 ids into `question_types`) and
          `"scenes"` (per image, a list of `(colour, shape)` name pairs).
        - `"answer_vocabulary"`: list of str (colours, shapes, counts).
        - `"question_types"`: tuple of str.
        - `"vocabulary"`: list of str (`"[PAD]"` = 0, `"[UNK]"` = 1) covering
          every question.
        - `"sequence_length"`: int.

    Example:

    >>> data = load_shape_questions(num_train=8, num_test=4)
    >>> tuple(data["train"]["inputs"]["images"].shape)
    (8, 24, 24, 3)
    >>> len(data["answer_vocabulary"])
    11
    """
    num_train = check_count("num_train", num_train, 0)
    num_test = check_count("num_test", num_test, 0)
    image_size = check_count("image_size", image_size, 16)
    if image_size % 2:
        raise ValueError(
            f"`image_size` must be even. Received: image_size={image_size}"
        )
    max_objects = check_count("max_objects", max_objects, 1)
    if max_objects > 4:
        raise ValueError(
            f"`max_objects` must be in [1, 4]. Received: max_objects={max_objects}"
        )
    sequence_length = check_count("sequence_length", sequence_length, 1)
    noise = check_noise(noise)
    colors, shapes = check_colors_shapes(colors, shapes)
    question_types = check_question_types(question_types, QUESTION_TYPES)
    answer_vocabulary = []
    if "color" in question_types:
        answer_vocabulary += list(colors)
    if "shape" in question_types:
        answer_vocabulary += list(shapes)
    if "count" in question_types:
        answer_vocabulary += [str(i) for i in range(max_objects + 1)]
    vocabulary = build_vocabulary(_all_questions(colors, shapes))

    splits = {}
    for split_id, (split, n) in enumerate((("train", num_train), ("test", num_test))):
        rng = np.random.default_rng([seed, 17, split_id])
        images = np.empty((n, image_size, image_size, 3), "float32")
        questions, answers, kinds, scenes = [], [], [], []
        for i in range(n):
            kind = int(rng.integers(len(question_types)))
            count = None
            if question_types[kind] == "count":
                count = (
                    int(rng.integers(len(shapes))),
                    int(rng.integers(max_objects + 1)),
                )
            qa = None
            while qa is None:
                objects = _scene(
                    rng, max_objects, len(colors), len(shapes), image_size, count
                )
                qa = _question(
                    rng,
                    question_types[kind],
                    objects,
                    colors,
                    shapes,
                    None if count is None else count[0],
                )
            images[i] = background(rng, (image_size, image_size, 3))
            draw_objects(images[i], objects, colors, shapes, rng.uniform(0.85, 1.0))
            questions.append(qa[0])
            answers.append(qa[1])
            kinds.append(kind)
            scenes.append([(colors[o[0]], shapes[o[1]]) for o in objects])
        add_noise(rng, images, noise)
        splits[split] = (
            {"images": images},
            questions,
            answers,
            kinds,
            {"scenes": scenes},
        )
    return question_dataset(
        splits, answer_vocabulary, question_types, vocabulary, sequence_length
    )
