"""Private helpers of the procedural question datasets (scenes, videos).

Objects are drawn with the masks of `keras_mm.data.shapes` (the same circle,
square, triangle, ... as `load_shapes`), each at its own centre and radius, onto
a dark noisy background. Questions are encoded with the shared word-level
vocabulary helpers.
"""

import numpy as np

from keras_mm.data.encode_texts import encode_texts
from keras_mm.data.shapes import COLORS, SHAPES, _check_names, _shape_mask


def check_count(arg, value, least):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ValueError(f"`{arg}` must be an integer. Received: {arg}={value!r}")
    if value < least:
        raise ValueError(f"`{arg}` must be >= {least}. Received: {arg}={value!r}")
    return int(value)


def check_noise(noise):
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0:
        raise ValueError(f"`noise` must be a number >= 0. Received: noise={noise!r}")
    return float(noise)


def check_colors_shapes(colors, shapes):
    return _check_names("colors", colors, COLORS), _check_names(
        "shapes", shapes, SHAPES
    )


def check_question_types(question_types, allowed):
    """`question_types` (one name or several) as a non-empty tuple of `allowed`."""
    if isinstance(question_types, str):
        question_types = (question_types,)
    question_types = tuple(question_types)
    if not question_types or any(q not in allowed for q in question_types):
        raise ValueError(
            f"`question_types` must be a non-empty subset of {allowed}. "
            f"Received: question_types={question_types!r}"
        )
    return question_types


def draw_objects(canvas, objects, colors, shapes, brightness):
    """Paint `objects` onto one `(S, S, 3)` canvas in place.

    Args:
        canvas: float32 array `(S, S, 3)`.
        objects: iterable of `(color_index, shape_index, cx, cy, radius)`.
        colors, shapes: the name tuples the indices refer to.
        brightness: float multiplying the colours.
    """
    s = canvas.shape[0]
    grid = np.arange(s, dtype="float32")
    for color, shape, cx, cy, r in objects:
        mask = _shape_mask(
            shapes[shape], grid[None, :] - cx, grid[:, None] - cy, np.float32(r)
        )
        canvas[mask] = np.asarray(COLORS[colors[color]], "float32") * brightness


def background(rng, shape):
    """A dark uniform background of random level (pixel noise is added later)."""
    return np.full(shape, rng.uniform(0.0, 0.25), dtype="float32")


def add_noise(rng, images, noise):
    if noise:
        images += noise * rng.standard_normal(images.shape, dtype="float32")
    return np.clip(images, 0.0, 1.0, out=images)


def plural(shape):
    return shape + ("es" if shape.endswith(("s", "sh", "ch", "x")) else "s")


def question_dataset(
    splits, answer_vocabulary, question_types, vocabulary, sequence_length
):
    """The dict returned by the question loaders: encoded splits and vocabularies.

    Args:
        splits: dict `{split: (inputs, questions, answers, kinds, extras)}`: the
            pixel inputs (`{"images": ...}` or `{"videos": ...}`), the question
            and answer texts (lists of str), the question type ids (list of int)
            and per-example extras (`{"scenes": ...}`), which come last.
        answer_vocabulary: list of str; `"answers"` are ids into it.
        question_types: tuple of str; `kinds` are ids into it.
        vocabulary, sequence_length: how the questions are encoded.
    """
    answer_ids = {a: i for i, a in enumerate(answer_vocabulary)}
    out = {}
    for split, (inputs, questions, answers, kinds, extras) in splits.items():
        enc = encode_texts(questions, vocabulary, sequence_length)
        out[split] = {
            "inputs": {
                **inputs,
                "token_ids": enc["token_ids"],
                "padding_mask": enc["padding_mask"],
            },
            "answers": np.asarray([answer_ids[a] for a in answers], "int32"),
            "answer_texts": answers,
            "questions": questions,
            "question_types": np.asarray(kinds, "int32"),
            **extras,
        }
    out["answer_vocabulary"] = answer_vocabulary
    out["question_types"] = question_types
    out["vocabulary"] = vocabulary
    out["sequence_length"] = sequence_length
    return out
