"""A procedural coloured-shapes image-caption dataset (no download)."""

import numpy as np

from keras_mm.api_export import keras_mm_export
from keras_mm.data.class_prompts import fix_articles, make_class_prompts, prompt_words
from keras_mm.data.encode_texts import encode_texts
from keras_mm.data.vocabulary import build_vocabulary

# RGB in [0, 1]; far apart so that a 32x32 image separates them clearly.
COLORS = {
    "red": (0.95, 0.1, 0.1),
    "green": (0.1, 0.85, 0.1),
    "blue": (0.15, 0.3, 1.0),
    "yellow": (0.95, 0.9, 0.1),
    "purple": (0.65, 0.2, 0.95),
    "cyan": (0.1, 0.9, 0.9),
    "orange": (1.0, 0.55, 0.0),
    "white": (0.97, 0.97, 0.97),
}
# The colour of `gray_shapes` training images: not a class colour, so every shape
# can be shown in it without showing a held-out combination.
GRAY = (0.8, 0.8, 0.8)
SIZES = ("small", "large")
SHAPES = ("circle", "square", "triangle", "plus", "ring", "bar", "diamond")
DEFAULT_COLORS = ("red", "green", "blue", "yellow")
DEFAULT_SHAPES = ("circle", "square", "triangle", "plus", "ring", "bar")
CAPTION_TEMPLATES = (
    "a {color} {shape}",
    "a {size} {color} {shape}",
    "a picture of a {color} {shape}",
    "an image showing a {size} {color} {shape}",
    "there is a {color} {shape} in the picture",
    "a {shape} that is {color}",
    "a {color} {shape} on a dark background",
)
PROMPT_TEMPLATES = (
    "a photo of a {}",
    "a {}",
    "a picture of a {}",
    "an image of a {}",
)
SPLITS = ("train", "test", "compositional")


def _shape_mask(shape, dx, dy, r):
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return np.maximum(ax, ay) <= r
    if shape == "triangle":  # apex up, base at 0.8 r below the centre
        return (dy >= -r) & (dy <= 0.8 * r) & (ax <= (dy + r) / 1.8)
    if shape == "plus":
        return ((ax <= 0.3 * r) & (ay <= r)) | ((ay <= 0.3 * r) & (ax <= r))
    if shape == "ring":
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if shape == "bar":
        return (ax <= r) & (ay <= 0.35 * r)
    return ax + ay <= r  # diamond


def _render(rng, color_idx, shape_idx, colors, shapes, image_size, noise, size_range):
    """Draw one shape per image: (N, S, S, 3) float32 in [0, 1] and the radii."""
    n, s = len(color_idx), image_size
    r = rng.uniform(*size_range, size=n).astype("float32") * s
    cx = rng.uniform(0, 1, size=n).astype("float32") * (s - 1 - 2 * r) + r
    cy = rng.uniform(0, 1, size=n).astype("float32") * (s - 1 - 2 * r) + r
    background = rng.uniform(0.0, 0.3, size=n).astype("float32")
    brightness = rng.uniform(0.85, 1.0, size=n).astype("float32")
    grid = np.arange(s, dtype="float32")
    mask = np.zeros((n, s, s), dtype=bool)
    for k, shape in enumerate(shapes):
        idx = np.flatnonzero(shape_idx == k)
        if idx.size:
            dx = grid[None, None, :] - cx[idx, None, None]
            dy = grid[None, :, None] - cy[idx, None, None]
            mask[idx] = _shape_mask(shape, dx, dy, r[idx, None, None])
    palette = np.asarray([*(COLORS[c] for c in colors), GRAY], dtype="float32")
    fg = palette[color_idx] * brightness[:, None]  # (N, 3)
    images = np.where(
        mask[..., None], fg[:, None, None, :], background[:, None, None, None]
    )
    images += noise * rng.standard_normal(images.shape, dtype="float32")
    return np.clip(images, 0.0, 1.0, out=images), r / s


def _check_names(arg, names, known):
    names = tuple(names)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(
            f"`{arg}` must hold at least 2 distinct names. Received: {arg}={names}"
        )
    for name in names:
        if name not in known:
            raise ValueError(
                f"Unknown entry in `{arg}`: {name!r}. Expected names from "
                f"{sorted(known)}"
            )
    return names


def _held_out(held_out, colors, shapes):
    if held_out is None:  # one combination per colour, each on a different shape
        return [(c, shapes[(i + 1) % len(shapes)]) for i, c in enumerate(colors)]
    pairs = []
    for item in held_out:
        pair = tuple(item.split()) if isinstance(item, str) else tuple(item)
        if len(pair) != 2 or pair[0] not in colors or pair[1] not in shapes:
            raise ValueError(
                "Every `held_out` entry must be a (colour, shape) pair or a "
                f"'colour shape' string from the chosen colours {colors} and shapes "
                f"{shapes}. Received: {item!r}"
            )
        pairs.append(pair)
    for c in colors:
        if all((c, s) in pairs for s in shapes):
            raise ValueError(f"`held_out` leaves no training class with colour {c!r}")
    for s in shapes:
        if all((c, s) in pairs for c in colors):
            raise ValueError(f"`held_out` leaves no training class with shape {s!r}")
    return pairs


@keras_mm_export("keras_mm.data.load_shapes")
def load_shapes(
    num_train=4000,
    num_test=1000,
    num_compositional=500,
    image_size=32,
    sequence_length=10,
    colors=DEFAULT_COLORS,
    shapes=DEFAULT_SHAPES,
    held_out=None,
    noise=0.05,
    size_range=(0.24, 0.36),
    gray_shapes=0.0,
    seed=0,
):
    """Load the procedural coloured-shapes image-caption dataset.

    Every image shows one solid shape of one colour on a dark, noisy background at a
    random position and size; its class is the (colour, shape) pair, so the default
    4 colours x 6 shapes give 24 classes. Each image has a caption from one of
    several templates ("a red circle", "a picture of a red circle", "a small red
    circle", ...). A few (colour, shape) combinations are held out: they never
    appear in `"train"` or `"test"`, only in `"compositional"`, which tests whether
    a model composes colour and shape words it learned separately. Everything is
    generated with NumPy from `seed` (each split from its own stream), in well under
    a second for thousands of images.

    With `gray_shapes`, that share of the training images shows its shape in
    gray ("a gray square"): gray is no class colour, so every shape appears in
    it and no held-out combination does. Such colour-neutral examples teach
    shape features that do not depend on the colour, which is what classifying
    a held-out combination needs (measured in docs/concepts.md, "Compositional
    zero-shot").

    Args:
        num_train: int. Training images (seen classes and gray shapes only).
        num_test: int. Test images of the seen classes.
        num_compositional: int. Images of the held-out combinations.
        image_size: int. Images are `(image_size, image_size, 3)`; >= 16.
        sequence_length: int. Token ids per caption (padded with 0).
        colors: list of str from "red", "green", "blue", "yellow", "purple",
            "cyan", "orange", "white".
        shapes: list of str from "circle", "square", "triangle", "plus", "ring",
            "bar", "diamond".
        held_out: list of (colour, shape) pairs or "colour shape" strings, or
            None for one per colour (colour i with shape i + 1). `[]` makes the
            compositional split empty.
        noise: float. Standard deviation of the pixel noise.
        size_range: (low, high). The shape "radius" (half its extent) is drawn
            uniformly in `[low, high] * image_size`; `0.05 <= low <= high <= 0.45`.
            Captions call a shape "small" below the middle of the range and
            "large" above.
        gray_shapes: float in [0, 1). Share of the training images drawn in
            gray (label -1); `colors` must then leave out "white".
        seed: int. The data are a deterministic function of the arguments.

    Returns:
        A dict:
        - `"train"`, `"test"`, `"compositional"`: each a dict with `"inputs"`
          (`{"images": (N, S, S, 3) float32 in [0, 1], "token_ids": (N, T) int32,
          "padding_mask": (N, T) bool}`), `"labels"` (`(N,)` int32 class ids, -1
          for gray images), `"captions"` (list of N str), `"attributes"` (a
          dict of `(N,)` int32 ids of each image's `"color"`, `"shape"` and
          `"size"`, indexing `"attribute_names"`) and `"caption_attributes"`
          (the same for what each caption says: -1 where it does not name the
          attribute, as most captions leave out the size).
        - `"attribute_names"`: `{"color": [*colors, "gray"], "shape": shapes,
          "size": ["small", "large"]}`.
        - `"class_names"`: list of str, `"red circle"`, ...; id = colour index *
          len(shapes) + shape index.
        - `"seen_classes"`, `"held_out_classes"`: int32 arrays of class ids.
        - `"vocabulary"`: list of str (`"[PAD]"` = 0, `"[UNK]"` = 1); it covers
          every caption and prompt.
        - `"sequence_length"`: int.
        - `"prompt_templates"`: the zero-shot templates.
        - `"class_prompts"`: `make_class_prompts(class_names, vocabulary,
          sequence_length, prompt_templates)`, token ids `(C, P, T)`.

    Example:

    >>> data = load_shapes(num_train=64, num_test=16, num_compositional=8)
    >>> tuple(data["train"]["inputs"]["images"].shape), len(data["class_names"])
    ((64, 32, 32, 3), 24)
    """
    for arg, value, least in (
        ("num_train", num_train, 0),
        ("num_test", num_test, 0),
        ("num_compositional", num_compositional, 0),
        ("image_size", image_size, 16),
        ("sequence_length", sequence_length, 1),
    ):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"`{arg}` must be an integer. Received: {arg}={value!r}")
        if value < least:
            raise ValueError(f"`{arg}` must be >= {least}. Received: {arg}={value!r}")
    if not noise >= 0:
        raise ValueError(f"`noise` must be >= 0. Received: noise={noise!r}")
    if not 0 <= gray_shapes < 1:
        raise ValueError(
            f"`gray_shapes` must be in [0, 1). Received: gray_shapes={gray_shapes!r}"
        )
    try:
        low, high = (float(v) for v in size_range)
    except (TypeError, ValueError):
        low = high = -1.0
    if not 0.05 <= low <= high <= 0.45:
        raise ValueError(
            "`size_range` must be (low, high) with 0.05 <= low <= high <= 0.45. "
            f"Received: size_range={size_range!r}"
        )
    colors = _check_names("colors", colors, COLORS)
    shapes = _check_names("shapes", shapes, SHAPES)
    held = _held_out(held_out, colors, shapes)
    if gray_shapes and "white" in colors:
        raise ValueError(
            "`gray_shapes` needs `colors` without 'white' (too close to gray). "
            f"Received: colors={colors}"
        )
    num_shapes = len(shapes)
    class_names = [f"{c} {s}" for c in colors for s in shapes]
    held_ids = sorted(colors.index(c) * num_shapes + shapes.index(s) for c, s in held)
    seen_ids = [i for i in range(len(class_names)) if i not in held_ids]
    if num_compositional and not held_ids:
        raise ValueError(
            "`num_compositional` must be 0 when `held_out` is empty. Received: "
            f"num_compositional={num_compositional}"
        )

    # captions[colour][shape][size][template]; colour len(colors) is gray.
    captions = [
        [
            [
                [
                    fix_articles(t.format(color=c, shape=s, size=z))
                    for t in CAPTION_TEMPLATES
                ]
                for z in SIZES
            ]
            for s in shapes
        ]
        for c in (*colors, "gray")
    ]
    used = captions if gray_shapes else captions[:-1]  # default vocabulary as before
    all_texts = [t for c in used for s in c for z in s for t in z]
    all_texts += prompt_words(class_names, PROMPT_TEMPLATES)
    vocabulary = build_vocabulary(all_texts)
    sized = np.asarray(["{size}" in t for t in CAPTION_TEMPLATES])

    out = {}
    sizes = (num_train, num_test, num_compositional)
    pools = (seen_ids, seen_ids, held_ids)
    for split_id, (split, n, pool) in enumerate(zip(SPLITS, sizes, pools)):
        rng = np.random.default_rng([seed, split_id])
        labels = np.asarray(pool, dtype="int32")[rng.integers(0, len(pool), n)]
        color_idx, shape_idx = labels // num_shapes, labels % num_shapes
        if split == "train" and gray_shapes:
            gray = rng.random(n) < gray_shapes
            color_idx = np.where(gray, len(colors), color_idx)
            labels = np.where(gray, -1, labels).astype("int32")
        images, rel_size = _render(
            rng, color_idx, shape_idx, colors, shapes, image_size, noise, (low, high)
        )
        template = rng.integers(0, len(CAPTION_TEMPLATES), n)
        large = (rel_size >= (low + high) / 2).astype("int32")
        texts = [
            captions[c][s][z][t]
            for c, s, z, t in zip(color_idx, shape_idx, large, template)
        ]
        enc = encode_texts(texts, vocabulary, sequence_length)
        attributes = {
            "color": color_idx.astype("int32"),
            "shape": shape_idx.astype("int32"),
            "size": large,
        }
        said = dict(attributes, size=np.where(sized[template], large, -1))
        out[split] = {
            "inputs": {
                "images": images,
                "token_ids": enc["token_ids"],
                "padding_mask": enc["padding_mask"],
            },
            "labels": labels,
            "captions": texts,
            "attributes": attributes,
            "caption_attributes": {k: v.astype("int32") for k, v in said.items()},
        }
    out["class_names"] = class_names
    out["attribute_names"] = {
        "color": [*colors, "gray"],
        "shape": list(shapes),
        "size": list(SIZES),
    }
    out["seen_classes"] = np.asarray(seen_ids, dtype="int32")
    out["held_out_classes"] = np.asarray(held_ids, dtype="int32")
    out["vocabulary"] = vocabulary
    out["sequence_length"] = int(sequence_length)
    out["prompt_templates"] = PROMPT_TEMPLATES
    out["class_prompts"] = make_class_prompts(
        class_names, vocabulary, sequence_length, PROMPT_TEMPLATES
    )
    return out
