"""A contact sheet: a grid of image thumbnails with a caption under each."""

import io
import math
import sys

from keras_mm.cli.plots import _pyplot

THUMBNAIL = 160  # pixels, longest side
MAX_IMAGES = 48


def write_contact_sheet(images, path, title, columns=6):
    """Write a PNG grid of `images`: `(ref, caption, colour)` triples.

    `ref` is a path or `shard.tar:member`; an image that can no longer be read
    is drawn as an empty cell with its caption. Returns `path`, or None without
    matplotlib.
    """
    plt = _pyplot()
    if plt is None:
        print(
            "matplotlib is not installed: skipping the contact sheet "
            "(pip install matplotlib)",
            file=sys.stderr,
        )
        return None
    from PIL import Image

    from keras_mm.cli.encoding import read_image_bytes

    images = list(images)[:MAX_IMAGES]
    columns = max(1, min(columns, len(images)))
    rows = max(1, math.ceil(len(images) / columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(2.2 * columns, 2.5 * rows + 0.4), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, (ref, caption, colour) in zip(axes.flat, images):
        try:
            with Image.open(io.BytesIO(read_image_bytes(ref))) as img:
                img = img.convert("RGB")
                img.thumbnail((THUMBNAIL, THUMBNAIL))
                ax.imshow(img)
        except (OSError, ValueError, KeyError):
            pass
        ax.set_title(caption, fontsize=7, color=colour or "black")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
