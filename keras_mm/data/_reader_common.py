"""Private: turn parsed (image, text) records into arrays, for every reader."""

import warnings

import numpy as np

from keras_mm.data._files import ImageError, load_image, resolve_under_root
from keras_mm.data._text import check_sequence_length


def dangling_record(source, where, message, skip_missing):
    """A record naming an image the file does not list: error, or count it."""
    if not skip_missing:
        raise ValueError(f"{source}: {where} {message}")
    return 1


def build_arrays(
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
    num_dangling=0,
):
    """Decode images, tokenize texts and index each text's image.

    Args:
        source: str. The annotation file, for messages.
        root: str. Real path of the image directory.
        images: list of `(key, relative_path, where)`, in file order, unique keys.
        records: list of `(key, text, where)`; every key is in `images`.
        num_dangling: int. Records already dropped by the reader because their
            image is not listed (only with `skip_missing`).

    Returns:
        `(arrays, kept)`: `arrays` holds `"images"`, `"token_ids"`,
        `"padding_mask"`, `"index"` (record -> image row), `"texts"`,
        `"image_files"`, `"image_keys"`, `"vocabulary"`, `"num_skipped"`; `kept` is
        the list of kept record positions.
    """
    from keras_mm.data.tokenizer import make_tokenizer, tokenize_texts
    from keras_mm.data.vocabulary import build_vocabulary

    sequence_length = check_sequence_length(sequence_length)
    if max_images is not None and (
        not isinstance(max_images, int)
        or isinstance(max_images, bool)
        or max_images < 1
    ):
        raise ValueError(
            f"`max_images` must be None or a positive integer. Received: {max_images!r}"
        )
    used = {key for key, _, _ in records}
    wanted = [entry for entry in images if entry[0] in used]
    if max_images is not None:
        wanted = wanted[:max_images]
    # Resolve every path first: an escaping path is refused before any decoding.
    resolved = [
        (key, rel, resolve_under_root(root, rel, source, where))
        for key, rel, where in wanted
    ]
    rows, arrays, files, keys, skipped_images = {}, [], [], [], []
    for (key, rel, path), (_, _, where) in zip(resolved, wanted):
        try:
            arrays.append(
                load_image(path, image_size, max_pixels, crop_to_aspect_ratio, where)
            )
        except ImageError as e:
            if not skip_missing:
                raise ValueError(f"{e} Listed in {source}.") from None
            skipped_images.append(key)
            continue
        rows[key] = len(files)
        files.append(rel)
        keys.append(key)
    selected = {key for key, _, _ in wanted}
    kept = [i for i, (key, _, _) in enumerate(records) if key in rows]
    num_skipped = num_dangling + sum(
        1 for key, _, _ in records if key in selected and key not in rows
    )
    if num_skipped:
        warnings.warn(
            f"{source}: skipped {num_skipped} of {len(records) + num_dangling} "
            "records whose image is absent, missing or unreadable "
            f"({len(skipped_images)} unreadable image files).",
            stacklevel=3,
        )
    if not kept:
        raise ValueError(f"{source}: no records left to read.")
    texts = [records[i][1] for i in kept]
    if vocabulary is None:
        vocabulary = build_vocabulary(texts)
    encoded = tokenize_texts(texts, make_tokenizer(vocabulary, sequence_length))
    stacked = np.stack(arrays).astype("float32", copy=False)
    return {
        "images": stacked,
        "token_ids": encoded["token_ids"],
        "padding_mask": encoded["padding_mask"],
        "index": np.asarray([rows[records[i][0]] for i in kept], dtype="int32"),
        "texts": texts,
        "image_files": files,
        "image_keys": keys,
        "vocabulary": list(vocabulary),
        "num_skipped": num_skipped,
    }, kept


def caption_output(arrays):
    """The common return structure of the caption readers."""
    return {
        "images": arrays["images"],
        "token_ids": arrays["token_ids"],
        "padding_mask": arrays["padding_mask"],
        "caption_image_index": arrays["index"],
        "captions": arrays["texts"],
        "image_files": arrays["image_files"],
        "image_ids": arrays["image_keys"],
        "vocabulary": arrays["vocabulary"],
        "num_skipped": arrays["num_skipped"],
    }
