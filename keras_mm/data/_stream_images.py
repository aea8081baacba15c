"""Private: fetch, check, decode and preprocess one image inside tf.data.

`fetch` runs in Python (a `tf.numpy_function`): it confines the path, reads the
bytes and reads the header with Pillow (no decoding) to refuse missing,
non-image, truncated and oversized files by name. Decoding then runs in the
TensorFlow graph for JPEG (with libjpeg's DCT scaling, `ratio` 2/4/8, when the
image is at least that many times the target), PNG, GIF and RGB BMP; other
formats and modes (WebP, TIFF, CMYK JPEG, palette BMP, ...) are decoded by Pillow
in a `tf.numpy_function`. Pillow releases the GIL while decoding, so both paths
run in parallel in the `map` (one image per core at once).
"""

import io
import warnings

import numpy as np
import tensorflow as tf

from keras_mm.data._files import resolve_under_root

# Decoder branches of `decode`: JPEG at ratio 1, 2, 4, 8; tf.io (PNG/GIF/BMP); Pillow.
JPEG_RATIOS = (1, 2, 4, 8)
TF_IMAGE, PIL_IMAGE, BAD = 4, 5, -1
# Antialias the bicubic resize only where an axis shrinks by more than this
# factor: up to it, skipping it (4x cheaper) adds at most 0.24 of 255 to the mean
# difference from Pillow's BICUBIC on real photos (benchmarks/RESULTS.md (c)).
ANTIALIAS_ABOVE = 1.1


def check_image_bytes(data, name, max_pixels):
    """`(branch, height, width)` or raise `ValueError` for a bad image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            fmt, mode, (width, height) = img.format, img.mode, img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{name}: corrupt or unsupported image ({e}).") from None
    if width * height > max_pixels:
        raise ValueError(
            f"{name}: image of {width}x{height} = {width * height} pixels exceeds "
            f"max_pixels={max_pixels}."
        )
    tail = data.rstrip(b"\x00\r\n ")[-32:]
    truncated = (
        (fmt == "JPEG" and b"\xff\xd9" not in tail)
        or (fmt == "PNG" and b"IEND" not in tail)
        or (fmt == "GIF" and not tail.endswith(b";"))
    )
    if truncated:
        raise ValueError(f"{name}: truncated {fmt} image ({len(data)} bytes).")
    return fmt, mode, height, width


def choose_branch(fmt, mode, height, width, size):
    if fmt == "JPEG" and mode in ("RGB", "L"):
        ratio = 0
        while ratio < 3 and min(height, width) >= size * JPEG_RATIOS[ratio + 1]:
            ratio += 1
        return ratio
    if fmt in ("PNG", "GIF") or (fmt == "BMP" and mode == "RGB"):
        return TF_IMAGE
    return PIL_IMAGE


class Fetcher:
    """The Python step: path or tar bytes in, checked bytes and a branch out."""

    def __init__(self, root, source, max_pixels, size, skip, counts):
        self.root, self.source, self.max_pixels = root, source, max_pixels
        self.size, self.skip, self.counts = size, skip, counts

    def _bad(self, iteration, kind, message):
        if not self.skip:
            raise ValueError(message)
        self.counts.add(iteration, kind, example=message)
        return b"", np.int32(BAD)

    def __call__(self, iteration, ref, data, error):
        """`ref`: path under the root (files) or `shard:member` (tar)."""
        ref = ref.decode("utf-8", "replace")
        self.counts.add(iteration, "fetched")
        if error:
            return self._bad(iteration, "bad_record", error.decode("utf-8", "replace"))
        name = ref
        if self.root is not None:
            try:
                path = resolve_under_root(self.root, ref, self.source, "record")
            except ValueError as e:
                return self._bad(iteration, "escaping_path", str(e))
            name = path
            try:
                with open(path, "rb") as f:
                    data = f.read(self.max_pixels * 8 + 1)
            except FileNotFoundError:
                return self._bad(iteration, "missing", f"{path}: image file not found.")
            except OSError as e:
                return self._bad(iteration, "unreadable", f"{path}: {e}")
            if len(data) > self.max_pixels * 8:
                return self._bad(
                    iteration, "oversized", f"{path}: file larger than max_pixels*8."
                )
        try:
            fmt, mode, height, width = check_image_bytes(data, name, self.max_pixels)
        except ValueError as e:
            kind = "oversized" if "max_pixels" in str(e) else "corrupt"
            kind = "truncated" if "truncated" in str(e) else kind
            return self._bad(iteration, kind, f"{e} (listed in {self.source})")
        return data, np.int32(choose_branch(fmt, mode, height, width, self.size))


def pil_decode(data, size):
    """Pillow decode to RGB uint8, using JPEG draft mode near `2 * size`."""
    from PIL import Image

    if isinstance(data, np.ndarray):  # eager `numpy_function` (`load_image`)
        data = data.item()
    with Image.open(io.BytesIO(data)) as img:
        if img.format == "JPEG":
            img.draft("RGB", (int(size), int(size)))
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        return np.asarray(img.convert("RGB"), dtype="uint8")


def decode(data, branch, size):
    """uint8 `(H, W, 3)` in the graph; `branch` from `choose_branch`."""

    def jpeg(ratio):
        return lambda: tf.io.decode_jpeg(data, channels=3, ratio=ratio)

    def tf_image():
        return tf.io.decode_image(data, channels=3, expand_animations=False)

    def pil():
        image = tf.numpy_function(pil_decode, [data, size], tf.uint8, stateful=False)
        return tf.reshape(image, tf.stack([tf.shape(image)[0], tf.shape(image)[1], 3]))

    branches = [jpeg(r) for r in JPEG_RATIOS] + [tf_image, pil]
    image = tf.switch_case(tf.clip_by_value(branch, 0, PIL_IMAGE), branches)
    image.set_shape([None, None, 3])
    return image


def random_crop_box(height, width, seed, scale):
    """A random-resized-crop box `(top, left, h, w)` (Szegedy et al. 2015)."""
    area = tf.cast(height * width, tf.float32)
    u = tf.random.stateless_uniform([2], seed=seed)
    target = area * (scale[0] + (scale[1] - scale[0]) * u[0])
    log_ratio = np.log(3 / 4) + (np.log(4 / 3) - np.log(3 / 4)) * u[1]
    ratio = tf.exp(log_ratio)
    h = tf.cast(tf.round(tf.sqrt(target / ratio)), tf.int32)
    w = tf.cast(tf.round(tf.sqrt(target * ratio)), tf.int32)
    h, w = tf.clip_by_value(h, 1, height), tf.clip_by_value(w, 1, width)
    v = tf.random.stateless_uniform([2], seed=seed + 1)
    top = tf.cast(v[0] * tf.cast(height - h + 1, tf.float32), tf.int32)
    left = tf.cast(v[1] * tf.cast(width - w + 1, tf.float32), tf.int32)
    return tf.minimum(top, height - h), tf.minimum(left, width - w), h, w


def preprocess(image, size, mean, std, augment_seed=None, scale=(0.9, 1.0)):
    """Shortest side to `size` (bicubic) + centre crop, or a random resized crop."""
    image = normalize(resize_crop(image, size, augment_seed, scale), mean, std)
    image.set_shape([size, size, 3])
    return image


def normalize(images, mean, std):
    """Pixels `(..., W, 3)` in [0, 255] to `(x / 255 - mean) / std` per channel.

    Same values as broadcasting `mean` and `std` of shape `(3,)`, but over rows
    of `W * 3` (3x cheaper: Eigen does not vectorise a length-3 broadcast).
    """
    images = tf.clip_by_value(images, 0.0, 255.0) / 255.0
    if tuple(mean) == (0.0,) * 3 and tuple(std) == (1.0,) * 3:
        return images
    width = images.shape[-2]
    rows = tf.reshape(images, (-1, width * 3))
    rows = (rows - np.tile(np.float32(mean), width)) / np.tile(np.float32(std), width)
    return tf.reshape(rows, tf.shape(images))


def bicubic(image, new_h, new_w, height, width):
    """Bicubic resize, antialiased where an axis shrinks by over `ANTIALIAS_ABOVE`."""
    shrink = tf.maximum(height / new_h, width / new_w)
    return tf.cond(
        shrink > ANTIALIAS_ABOVE,
        lambda: tf.image.resize(image, (new_h, new_w), "bicubic", antialias=True),
        lambda: tf.image.resize(image, (new_h, new_w), "bicubic"),
    )


def resize_crop(image, size, augment_seed=None, scale=(0.9, 1.0)):
    """`preprocess` before `normalize`: float32 `(size, size, 3)` in [0, 255]."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    if augment_seed is not None:
        top, left, h, w = random_crop_box(height, width, augment_seed, scale)
        image = bicubic(image[top : top + h, left : left + w], size, size, h, w)
    else:
        short = tf.cast(tf.minimum(height, width), tf.float32)
        factor = size / short
        new_h = tf.maximum(
            size, tf.cast(tf.round(tf.cast(height, tf.float32) * factor), tf.int32)
        )
        new_w = tf.maximum(
            size, tf.cast(tf.round(tf.cast(width, tf.float32) * factor), tf.int32)
        )
        image = bicubic(image, new_h, new_w, height, width)
        top, left = (new_h - size) // 2, (new_w - size) // 2
        image = image[top : top + size, left : left + size]
    image.set_shape([size, size, 3])
    return image


def load_image(path, size, mean, std, max_pixels):
    """One image file as the stream preprocesses it: float32 `(size, size, 3)`.

    Checked like a stream record (`ValueError` naming the file), then decoded
    and preprocessed by the same graph functions as `ImageTextDataset`.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(max_pixels * 8 + 1)
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e}).") from None
    fmt, mode, height, width = check_image_bytes(data, path, max_pixels)
    branch = choose_branch(fmt, mode, height, width, size)
    pixels = decode(tf.constant(data), tf.constant(branch, tf.int32), size)
    image = preprocess(tf.cast(pixels, tf.float32), size, mean, std)
    return image.numpy()
