"""Private file helpers for the readers: confined paths, JSON, images.

Every error is a `ValueError` whose message starts with the file it concerns and,
where there is one, the record ("annotations[3] (id=17)"), so a user can find and
fix the bad entry.
"""

import json
import ntpath
import os
import posixpath
import warnings

import numpy as np

DEFAULT_MAX_PIXELS = 50_000_000


class ImageError(ValueError):
    """An image that is missing or cannot be used (skippable with skip_missing)."""


def check_dir(path, arg):
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ValueError(f"`{arg}` must be an existing directory. Received: {path!r}")
    return os.path.realpath(path)


def read_text(path, arg):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: file not found (`{arg}`).")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e}).") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e}).") from None


def read_json(path, arg):
    """Load a JSON file whose top level is an object."""
    path = os.fspath(path)
    text = read_text(path, arg)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}."
        ) from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: the top level must be a JSON object. Received: "
            f"{type(data).__name__}"
        )
    return data


def get_list(data, key, path):
    value = data.get(key)
    if not isinstance(value, list):
        found = "missing" if key not in data else f"a {type(value).__name__}"
        raise ValueError(
            f"{path}: the top-level key {key!r} must be a list. It is {found}."
        )
    return value


def get_field(record, key, kind, path, where):
    """`record[key]`, checked to be of `kind` ("int", "str" or "list")."""
    if not isinstance(record, dict):
        raise ValueError(
            f"{path}: {where} must be a JSON object. Received: {type(record).__name__}"
        )
    if key not in record:
        raise ValueError(f"{path}: {where} has no {key!r} key.")
    value = record[key]
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "str": isinstance(value, str) and bool(value.strip()),
        "list": isinstance(value, list),
    }[kind]
    if not ok:
        expected = {"int": "an integer", "str": "a non-empty string", "list": "a list"}
        raise ValueError(
            f"{path}: {where} {key!r} must be {expected[kind]}. Received: "
            f"{str(value)[:80]!r}"
        )
    return value


def resolve_under_root(root, relative, source, where):
    """Real path of `relative` inside the directory `root`, or `ValueError`.

    Absolute paths (POSIX or Windows), and paths that leave `root` once `..` and
    symbolic links are resolved, are refused whatever `skip_missing` says.
    """
    if not isinstance(relative, str) or not relative.strip() or "\x00" in relative:
        raise ValueError(
            f"{source}: {where}: the image path must be a non-empty string. "
            f"Received: {relative!r}"
        )
    if (
        posixpath.isabs(relative)
        or ntpath.isabs(relative)
        or ntpath.splitdrive(relative)[0]
    ):
        raise ValueError(
            f"{source}: {where}: absolute image path {relative!r} refused; image "
            f"paths must be relative to the dataset root {root!r}."
        )
    candidate = os.path.realpath(os.path.join(root, relative))
    if os.path.commonpath([root, candidate]) != root:
        raise ValueError(
            f"{source}: {where}: image path {relative!r} resolves to {candidate!r}, "
            f"outside the dataset root {root!r}; refused."
        )
    return candidate


def load_image(path, image_size, max_pixels, crop_to_aspect_ratio, where):
    """Decode an image file to `(H, W, 3)` float32 in [0, 1], or raise ImageError."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise ImageError(f"{path}: image file not found ({where}).")
    height, width = image_size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageError(
                        f"{path}: image of {w}x{h} = {w * h} pixels exceeds "
                        f"max_pixels={max_pixels} ({where})."
                    )
                img.load()
                img = img.convert("RGB")
    except ImageError:
        raise
    except (
        OSError,
        SyntaxError,
        ValueError,
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as e:
        raise ImageError(
            f"{path}: corrupt, truncated or unsupported image ({where}): {e}"
        ) from None
    if crop_to_aspect_ratio:
        w, h = img.size
        scale = min(w / width, h / height)
        cw, ch = width * scale, height * scale
        left, top = (w - cw) / 2, (h - ch) / 2
        box = (left, top, left + cw, top + ch)
    else:
        box = None
    img = img.resize((width, height), Image.BILINEAR, box=box)
    return np.asarray(img, dtype="float32") / 255.0


def check_image_args(image_size, max_pixels):
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) != 2
        or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1
            for s in image_size
        )
    ):
        raise ValueError(
            "`image_size` must be an int or a (height, width) pair of positive "
            f"integers. Received: image_size={image_size!r}"
        )
    if (
        not isinstance(max_pixels, int)
        or isinstance(max_pixels, bool)
        or (max_pixels < 1)
    ):
        raise ValueError(
            f"`max_pixels` must be a positive integer. Received: {max_pixels!r}"
        )
    return tuple(image_size)
