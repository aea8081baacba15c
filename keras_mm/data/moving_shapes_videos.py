"""A procedural video question answering dataset of moving coloured shapes."""

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
    question_dataset,
)
from keras_mm.data.vocabulary import build_vocabulary

VIDEO_QUESTION_TYPES = ("direction", "color")
DIRECTIONS = ("left", "right", "up", "down")
# Unit steps (dx, dy) in image coordinates: rows grow downwards.
_STEPS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
VIDEO_TEMPLATES = {
    "direction": "which way does the {color} {shape} move?",
    "color": "what colour is the moving shape?",
}
DEFAULT_COLORS = ("red", "green", "blue", "yellow")
DEFAULT_SHAPES = ("circle", "square", "triangle")


def _path(rng, size, r, direction, travel):
    """Start centre so that the whole straight path stays inside the frame."""
    dx, dy = _STEPS[direction] if direction else (0, 0)
    lo_x = r + max(0.0, -dx * travel)
    hi_x = size - 1 - r - max(0.0, dx * travel)
    lo_y = r + max(0.0, -dy * travel)
    hi_y = size - 1 - r - max(0.0, dy * travel)
    return rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)


def _video(rng, num_colors, num_shapes, size, num_frames, step, max_objects):
    """Objects `(color, shape, x0, y0, r, direction or None)`, without overlaps."""
    travel = step * (num_frames - 1)
    k = int(rng.integers(1, max_objects + 1))
    while True:
        colors = rng.permutation(num_colors)[:k]
        shapes = rng.permutation(num_shapes)[:k]
        first = DIRECTIONS[int(rng.integers(4))]
        directions = [first]
        if k == 2:  # the second object stays still or moves another way
            others = [d for d in DIRECTIONS if d != first]
            directions.append(None if rng.uniform() < 0.5 else str(rng.choice(others)))
        objects = []
        for c, s, d in zip(colors, shapes, directions):
            r = rng.uniform(0.14, 0.19) * size
            x0, y0 = _path(rng, size, r, d, travel)
            objects.append((int(c), int(s), x0, y0, r, d))
        if k == 1 or _apart(objects, num_frames, step):
            return objects


def _positions(obj, t, step):
    dx, dy = _STEPS[obj[5]] if obj[5] else (0, 0)
    return obj[2] + dx * step * t, obj[3] + dy * step * t


def _apart(objects, num_frames, step):
    a, b = objects
    for t in range(num_frames):
        (xa, ya), (xb, yb) = _positions(a, t, step), _positions(b, t, step)
        if np.hypot(xa - xb, ya - yb) < a[4] + b[4] + 1.0:
            return False
    return True


def _question(rng, kind, objects, colors, shapes):
    moving = [o for o in objects if o[5] is not None]
    if kind == "direction":
        o = moving[int(rng.integers(len(moving)))]
        question = VIDEO_TEMPLATES["direction"].format(
            color=colors[o[0]], shape=shapes[o[1]]
        )
        return question, o[5]
    if len(moving) != 1:
        return None
    return VIDEO_TEMPLATES["color"], colors[moving[0][0]]


@keras_mm_export("keras_mm.data.load_moving_shapes_videos")
def load_moving_shapes_videos(
    num_train=2000,
    num_test=500,
    num_frames=4,
    frame_size=16,
    max_objects=2,
    colors=DEFAULT_COLORS,
    shapes=DEFAULT_SHAPES,
    question_types=VIDEO_QUESTION_TYPES,
    step=None,
    sequence_length=10,
    noise=0.03,
    seed=0,
):
    """Load a procedural video QA dataset: short videos of moving shapes.

    Each video has `num_frames` frames of `(frame_size, frame_size, 3)` and
    shows one or two shapes of different colours and kinds. The first moves in
    a straight line left, right, up or down by `step` pixels per frame; a second
    one, when present, either stays still or moves another way. Shapes never
    overlap and never leave the frame. Each video has one question:

    - `"direction"`: "which way does the red square move?" (about a moving
      shape) -> "left" / "right" / "up" / "down";
    - `"color"`: "what colour is the moving shape?" (videos where exactly one
      shape moves) -> a colour.

    A single frame cannot answer either question: the motion is only visible
    across frames, and with two moving shapes the question says which one is
    meant. Generated with NumPy from `seed` (train and test from separate
    streams).

    Args:
        num_train: int. Training videos.
        num_test: int. Held-out videos.
        num_frames: int >= 2. Frames per video.
        frame_size: int >= 12. Frames are square.
        max_objects: 1 or 2. Most shapes in one video.
        colors: list of >= 2 colour names (see `keras_mm.data.load_shapes`).
        shapes: list of >= 2 shape names.
        question_types: non-empty subset of `("direction", "color")`.
        step: float or None. Pixels moved per frame; None picks
            `0.3 * frame_size / (num_frames - 1)` (a path of 30% of the frame).
        sequence_length: int. Token ids per question (padded with 0).
        noise: float >= 0. Standard deviation of the pixel noise.
        seed: int. The data are a deterministic function of the arguments.

    Returns:
        A dict:
        - `"train"`, `"test"`: each a dict with `"inputs"` (`{"videos": (N, F,
          S, S, 3) float32 in [0, 1], "token_ids": (N, T) int32,
          "padding_mask": (N, T) bool}`), `"answers"` (`(N,)` int32 ids into
          `answer_vocabulary`), `"answer_texts"`, `"questions"` (lists of N
          str), `"question_types"` (`(N,)` int32 ids into `question_types`)
          and `"motions"` (per video, a list of `(colour, shape, direction or
          None)`).
        - `"answer_vocabulary"`, `"question_types"`, `"vocabulary"`,
          `"sequence_length"`, `"num_frames"`.

    Example:

    >>> data = load_moving_shapes_videos(num_train=8, num_test=4)
    >>> tuple(data["train"]["inputs"]["videos"].shape)
    (8, 4, 16, 16, 3)
    >>> data["answer_vocabulary"][:4]
    ['left', 'right', 'up', 'down']
    """
    num_train = check_count("num_train", num_train, 0)
    num_test = check_count("num_test", num_test, 0)
    num_frames = check_count("num_frames", num_frames, 2)
    frame_size = check_count("frame_size", frame_size, 12)
    max_objects = check_count("max_objects", max_objects, 1)
    if max_objects > 2:
        raise ValueError(
            f"`max_objects` must be 1 or 2. Received: max_objects={max_objects}"
        )
    sequence_length = check_count("sequence_length", sequence_length, 1)
    noise = check_noise(noise)
    colors, shapes = check_colors_shapes(colors, shapes)
    question_types = check_question_types(question_types, VIDEO_QUESTION_TYPES)
    if step is None:
        step = 0.3 * frame_size / (num_frames - 1)
    if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0:
        raise ValueError(f"`step` must be a number > 0. Received: step={step!r}")
    if step * (num_frames - 1) > 0.5 * frame_size:
        raise ValueError(
            "The path `step * (num_frames - 1)` must be at most half the frame "
            f"size. Received: step={step}, num_frames={num_frames}, "
            f"frame_size={frame_size}"
        )
    answer_vocabulary = []
    if "direction" in question_types:
        answer_vocabulary += list(DIRECTIONS)
    if "color" in question_types:
        answer_vocabulary += list(colors)
    texts = [
        VIDEO_TEMPLATES["direction"].format(color=c, shape=s)
        for c in colors
        for s in shapes
    ] + [VIDEO_TEMPLATES["color"]]
    vocabulary = build_vocabulary(texts)

    splits = {}
    shape = (num_frames, frame_size, frame_size, 3)
    for split_id, (split, n) in enumerate((("train", num_train), ("test", num_test))):
        rng = np.random.default_rng([seed, 23, split_id])
        videos = np.empty((n,) + shape, "float32")
        questions, answers, kinds, motions = [], [], [], []
        for i in range(n):
            kind = int(rng.integers(len(question_types)))
            qa = None
            while qa is None:
                objects = _video(
                    rng,
                    len(colors),
                    len(shapes),
                    frame_size,
                    num_frames,
                    step,
                    max_objects,
                )
                qa = _question(rng, question_types[kind], objects, colors, shapes)
            videos[i] = background(rng, shape)
            brightness = rng.uniform(0.85, 1.0)
            for t in range(num_frames):
                frame_objects = [
                    (o[0], o[1], *_positions(o, t, step), o[4]) for o in objects
                ]
                draw_objects(videos[i, t], frame_objects, colors, shapes, brightness)
            questions.append(qa[0])
            answers.append(qa[1])
            kinds.append(kind)
            motions.append([(colors[o[0]], shapes[o[1]], o[5]) for o in objects])
        add_noise(rng, videos, noise)
        splits[split] = (
            {"videos": videos},
            questions,
            answers,
            kinds,
            {"motions": motions},
        )
    out = question_dataset(
        splits, answer_vocabulary, question_types, vocabulary, sequence_length
    )
    out["num_frames"] = num_frames
    return out
