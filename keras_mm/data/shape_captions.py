"""Procedural scenes of one or two coloured shapes, with position captions."""

import numpy as np

from keras_mm.api_export import keras_mm_export
from keras_mm.data._scenes import check_count
from keras_mm.data._text import split_words
from keras_mm.data.shapes import COLORS, SHAPES, _check_names, _shape_mask
from keras_mm.data.vocabulary import build_vocabulary

# Token ids 0-3 of every vocabulary made here.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[START]", "[END]")
PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3
DEFAULT_COLORS = ("red", "green", "blue", "yellow")
DEFAULT_SHAPES = ("circle", "square", "triangle")
POSITIONS = ("left", "middle", "right")
# Horizontal band of each position, as fractions of the image width.
_BANDS = {"left": (0.0, 0.5), "middle": (0.3, 0.7), "right": (0.5, 1.0)}
PHRASES = {"left": "on the left", "middle": "in the middle", "right": "on the right"}


def sample_scenes(rng, n, colors, shapes, max_objects):
    """`n` scenes, each a tuple of (colour, shape, position) objects.

    One object: left, middle or right. Two objects: one on the left, one on the
    right, of different shapes (so "the circle" always names one object).
    """
    scenes = []
    counts = rng.integers(1, max_objects + 1, size=n)
    for count in counts:
        if count == 1:
            scenes.append(
                (
                    (
                        colors[rng.integers(len(colors))],
                        shapes[rng.integers(len(shapes))],
                        POSITIONS[rng.integers(3)],
                    ),
                )
            )
        else:
            kinds = rng.choice(len(shapes), size=2, replace=False)
            scenes.append(
                tuple(
                    (colors[rng.integers(len(colors))], shapes[k], pos)
                    for k, pos in zip(kinds, ("left", "right"))
                )
            )
    return scenes


def render_scenes(rng, scenes, image_size, noise):
    """Draw the scenes: `(N, S, S, 3)` float32 in [0, 1]."""
    s = image_size
    grid = np.arange(s, dtype="float32")
    images = np.empty((len(scenes), s, s, 3), dtype="float32")
    background = rng.uniform(0.0, 0.25, size=len(scenes)).astype("float32")
    for i, scene in enumerate(scenes):
        image = np.full((s, s, 3), background[i], dtype="float32")
        for color, shape, position in scene:
            r = rng.uniform(0.13, 0.17) * s
            low, high = _BANDS[position]
            cx = rng.uniform(low * s + r, high * s - 1 - r)
            cy = rng.uniform(r, s - 1 - r)
            dx = grid[None, :] - cx
            dy = grid[:, None] - cy
            mask = _shape_mask(shape, dx, dy, r)
            fg = np.asarray(COLORS[color], "float32") * rng.uniform(0.85, 1.0)
            image[mask] = fg
        images[i] = image
    images += noise * rng.standard_normal(images.shape, dtype="float32")
    return np.clip(images, 0.0, 1.0, out=images)


def caption_scene(scene):
    """ "a red circle on the left and a blue square on the right"."""
    return " and ".join(f"a {c} {s} {PHRASES[p]}" for c, s, p in scene)


def encode_with_markers(texts, vocabulary, sequence_length, arg="sequence_length"):
    """Token ids `[START] words... [END] [PAD]...`, `(N, sequence_length)` int32.

    Raises if a text does not fit, so no caption is silently truncated.
    """
    lookup = {w: i for i, w in enumerate(vocabulary)}
    ids = np.zeros((len(texts), sequence_length), dtype="int32")
    for row, text in enumerate(texts):
        words = [lookup.get(w, UNK_ID) for w in split_words(text)]
        tokens = [START_ID] + words + [END_ID]
        if len(tokens) > sequence_length:
            raise ValueError(
                f"`{arg}` is too short: {text!r} needs {len(tokens)} tokens with "
                f"[START] and [END]. Received: {arg}={sequence_length}"
            )
        ids[row, : len(tokens)] = tokens
    return ids


def scene_vocabulary(colors, shapes, extra_texts=()):
    texts = [
        caption_scene(((c, s, p),)) for c in colors for s in shapes for p in POSITIONS
    ]
    texts.append(" and ")
    return build_vocabulary(texts + list(extra_texts), reserved_tokens=SPECIAL_TOKENS)


@keras_mm_export("keras_mm.data.load_shape_captions")
def load_shape_captions(
    num_train=2000,
    num_test=400,
    image_size=32,
    sequence_length=16,
    colors=DEFAULT_COLORS,
    shapes=DEFAULT_SHAPES,
    max_objects=2,
    noise=0.03,
    seed=0,
):
    """Load procedural image captions: scenes of one or two coloured shapes.

    A scene holds one shape (on the left, in the middle or on the right) or two
    shapes of different kinds (one on the left, one on the right), each of a
    random colour, drawn on a dark noisy background. Its caption names every
    object left to right: "a red circle on the left and a blue square on the
    right". Captions are a deterministic function of the scene, so a captioner
    must read colour, shape and position from the pixels; with the defaults
    there are 36 one-object and 144 two-object captions. Everything is made
    with NumPy from `seed` (each split from its own stream).

    Token ids are `[START] words... [END]`, right-padded with 0; the vocabulary
    starts with `"[PAD]"`, `"[UNK]"`, `"[START]"`, `"[END]"` (ids 0-3).

    Args:
        num_train: int. Training scenes.
        num_test: int. Held-out scenes (another random stream).
        image_size: int >= 16. Images are `(image_size, image_size, 3)`.
        sequence_length: int. Token ids per caption; must fit the longest
            caption plus [START] and [END] (15 tokens for two objects).
        colors: list of colour names (see `keras_mm.data.load_shapes`).
        shapes: list of shape names (at least 2).
        max_objects: 1 or 2. Largest number of shapes in a scene.
        noise: float >= 0. Standard deviation of the pixel noise.
        seed: int.

    Returns:
        A dict:
        - `"train"`, `"test"`: each a dict with `"inputs"` (`{"images": (N, S,
          S, 3) float32 in [0, 1], "token_ids": (N, T) int32, "padding_mask":
          (N, T) bool}`), `"captions"` (list of N str) and `"scenes"` (list of N
          tuples of `(colour, shape, position)`).
        - `"vocabulary"`: list of str.
        - `"sequence_length"`, `"start_token_id"` (2), `"end_token_id"` (3).

    Example:

    >>> data = load_shape_captions(num_train=8, num_test=4, seed=1)
    >>> tuple(data["train"]["inputs"]["images"].shape)
    (8, 32, 32, 3)
    >>> data["train"]["captions"][0]
    'a yellow circle on the left and a red square on the right'
    """
    num_train = check_count("num_train", num_train, 0)
    num_test = check_count("num_test", num_test, 0)
    image_size = check_count("image_size", image_size, 16)
    sequence_length = check_count("sequence_length", sequence_length, 3)
    if max_objects not in (1, 2):
        raise ValueError(f"`max_objects` must be 1 or 2. Received: {max_objects!r}")
    if not noise >= 0:
        raise ValueError(f"`noise` must be >= 0. Received: noise={noise!r}")
    colors = _check_names("colors", colors, COLORS)
    shapes = _check_names("shapes", shapes, SHAPES)
    vocabulary = scene_vocabulary(colors, shapes)
    out = {}
    for split_id, (split, n) in enumerate((("train", num_train), ("test", num_test))):
        rng = np.random.default_rng([seed, 101, split_id])
        scenes = sample_scenes(rng, n, colors, shapes, max_objects)
        images = render_scenes(rng, scenes, image_size, noise)
        captions = [caption_scene(scene) for scene in scenes]
        token_ids = encode_with_markers(captions, vocabulary, sequence_length)
        out[split] = {
            "inputs": {
                "images": images,
                "token_ids": token_ids,
                "padding_mask": token_ids != PAD_ID,
            },
            "captions": captions,
            "scenes": scenes,
        }
    out["vocabulary"] = vocabulary
    out["sequence_length"] = sequence_length
    out["start_token_id"] = START_ID
    out["end_token_id"] = END_ID
    return out
