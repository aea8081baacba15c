"""Reader for Flickr30K caption files (`results_20130124.token`, `captions.txt`)."""

import csv

from keras_mm.api_export import keras_mm_export
from keras_mm.data._files import (
    DEFAULT_MAX_PIXELS,
    check_dir,
    check_image_args,
    read_text,
)
from keras_mm.data._reader_common import build_arrays, caption_output


def _parse(text, source):
    """Yield `(line_number, image_file, caption)` from any supported layout."""
    lines = text.splitlines()
    first = next((ln.strip().lower() for ln in lines if ln.strip()), "")
    header = first.replace(" ", "")
    if header.startswith("image,caption"):
        layout = "csv"
    elif header.startswith("image_name|"):
        layout = "pipe"
    else:
        layout = "token"
    header_seen = layout == "token"
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if not header_seen:
            header_seen = True
            continue
        where = f"line {number}"
        if layout == "token":
            name, tab, caption = line.partition("\t")
            image, hash_, index = name.rpartition("#")
            ok = tab and hash_ and image.strip() and index.strip().isdigit()
            expected = "'<image>.jpg#<n><TAB><caption>'"
        elif layout == "csv":
            row = next(csv.reader([line]))
            ok = len(row) == 2
            image, caption = (row + ["", ""])[:2]
            expected = "'<image>,<caption>' (CSV, quoted if the caption has commas)"
        else:
            parts = line.split("|", 2)
            ok = len(parts) == 3
            image, caption = (parts[0], parts[2]) if ok else ("", "")
            expected = "'<image>| <n>| <caption>'"
        if not ok or not caption.strip() or not image.strip():
            raise ValueError(
                f"{source}: {where}: expected {expected}. Received: {line[:100]!r}"
            )
        yield number, image.strip(), caption.strip()


@keras_mm_export("keras_mm.data.read_flickr30k_captions")
def read_flickr30k_captions(
    captions_file,
    image_dir,
    image_size=224,
    sequence_length=32,
    vocabulary=None,
    crop_to_aspect_ratio=True,
    max_pixels=DEFAULT_MAX_PIXELS,
    skip_missing=False,
    max_images=None,
):
    """Read a Flickr30K (or Flickr8K) caption file and its images.

    Three layouts are recognised from the first line:

    - the original `results_20130124.token` (and `Flickr8k.token.txt`):
      `1000092795.jpg#0<TAB>Two young guys ...`;
    - the `captions.txt` CSV with an `image,caption` header;
    - the pipe-separated `results.csv` with an `image_name| comment_number|
      comment` header.

    Images are read from `image_dir/<image>`; paths escaping `image_dir` are
    refused. A malformed line is an error naming the file and the line.

    Args:
        captions_file: path to the caption file.
        image_dir: path to `flickr30k-images/`.
        image_size, sequence_length, vocabulary, crop_to_aspect_ratio,
            max_pixels, skip_missing, max_images: as in `read_coco_captions`.

    Returns:
        The dict of `read_coco_captions`; `"image_ids"` are the image file names.
    """
    image_size = check_image_args(image_size, max_pixels)
    root = check_dir(image_dir, "image_dir")
    source = str(captions_file)
    text = read_text(captions_file, "captions_file")
    images, records, seen = [], [], set()
    for number, image, caption in _parse(text, source):
        where = f"line {number} ({image})"
        if image not in seen:
            seen.add(image)
            images.append((image, image, where))
        records.append((image, caption, where))
    if not records:
        raise ValueError(f"{source}: no captions found.")
    arrays, _ = build_arrays(
        source,
        root,
        images,
        records,
        image_size,
        sequence_length,
        vocabulary,
        crop_to_aspect_ratio,
        max_pixels,
        skip_missing,
        max_images,
    )
    return caption_output(arrays)
