"""Reader for the Karpathy split JSON (dataset_coco.json, dataset_flickr30k.json)."""

import os

from keras_mm.api_export import keras_mm_export
from keras_mm.data._files import (
    DEFAULT_MAX_PIXELS,
    check_dir,
    check_image_args,
    get_field,
    get_list,
    read_json,
)
from keras_mm.data._reader_common import build_arrays, caption_output

KARPATHY_SPLITS = ("train", "restval", "val", "test")


def _caption(sentence, source, where):
    if isinstance(sentence, dict) and isinstance(sentence.get("raw"), str):
        raw = sentence["raw"].strip()
        if raw:
            return raw
    if isinstance(sentence, dict) and isinstance(sentence.get("tokens"), list):
        tokens = sentence["tokens"]
        if tokens and all(isinstance(t, str) for t in tokens):
            return " ".join(tokens)
    raise ValueError(
        f"{source}: {where} needs a non-empty 'raw' string or a 'tokens' list of "
        f"strings. Received: {str(sentence)[:80]!r}"
    )


@keras_mm_export("keras_mm.data.read_karpathy_captions")
def read_karpathy_captions(
    split_file,
    image_dir,
    split=None,
    image_size=224,
    sequence_length=32,
    vocabulary=None,
    crop_to_aspect_ratio=True,
    max_pixels=DEFAULT_MAX_PIXELS,
    skip_missing=False,
    max_images=None,
):
    """Read a Karpathy split file (COCO or Flickr30K) and its images.

    The layout is Karpathy & Fei-Fei's `dataset_coco.json` /
    `dataset_flickr30k.json`: `{"images": [{"filename", "filepath" (COCO only),
    "split", "sentences": [{"raw", "tokens", ...}], "cocoid" / "imgid", ...}]}`.
    Images are read from `image_dir/filepath/filename` (or `image_dir/filename`
    without `filepath`); each sentence's `"raw"` text is the caption (its
    `"tokens"` joined when `"raw"` is absent). Image paths are confined to
    `image_dir` (absolute paths, `..` escapes and symbolic links pointing out are
    refused).

    Args:
        split_file: path to the JSON file.
        image_dir: path to the image root (`coco/` holding `train2014/` and
            `val2014/`, or `flickr30k-images/`).
        split: None (all images), one of "train", "restval", "val", "test", or a
            list of them (the common "train" set of COCO is `["train", "restval"]`).
        image_size, sequence_length, vocabulary, crop_to_aspect_ratio,
            max_pixels, skip_missing, max_images: as in `read_coco_captions`.

    Returns:
        The dict of `read_coco_captions`, with `"image_ids"` taken from `"cocoid"`,
        else `"imgid"`, else the image path, plus `"image_splits"`: the split of
        each image.
    """
    image_size = check_image_args(image_size, max_pixels)
    if split is None:
        wanted = set(KARPATHY_SPLITS)
    else:
        wanted = {split} if isinstance(split, str) else set(split)
        unknown = wanted - set(KARPATHY_SPLITS)
        if unknown or not wanted:
            raise ValueError(
                f"`split` must be None or from {KARPATHY_SPLITS}. Received: {split!r}"
            )
    root = check_dir(image_dir, "image_dir")
    data = read_json(split_file, "split_file")
    source = str(split_file)
    images, records, splits, seen = [], [], {}, set()
    for i, entry in enumerate(get_list(data, "images", source)):
        where = f"images[{i}]"
        filename = get_field(entry, "filename", "str", source, where)
        image_split = get_field(entry, "split", "str", source, where)
        if image_split not in KARPATHY_SPLITS:
            raise ValueError(
                f"{source}: {where} ({filename}) has split {image_split!r}; expected "
                f"one of {KARPATHY_SPLITS}."
            )
        if image_split not in wanted:
            continue
        filepath = entry.get("filepath")
        if filepath is not None:
            filepath = get_field(entry, "filepath", "str", source, where)
            rel = os.path.join(filepath, filename)
        else:
            rel = filename
        key = entry.get("cocoid", entry.get("imgid", rel))
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise ValueError(f"{source}: {where} has an invalid id {key!r}.")
        if key in seen:
            raise ValueError(f"{source}: {where} ({rel}) repeats image id {key!r}.")
        seen.add(key)
        label = f"{where} ({rel})"
        images.append((key, rel, label))
        splits[key] = image_split
        sentences = get_field(entry, "sentences", "list", source, where)
        for j, sentence in enumerate(sentences):
            records.append(
                (
                    key,
                    _caption(sentence, source, f"{label} sentences[{j}]"),
                    f"{label} sentences[{j}]",
                )
            )
    if not records:
        raise ValueError(f"{source}: no captioned image in split(s) {sorted(wanted)}.")
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
    out = caption_output(arrays)
    out["image_splits"] = [splits[key] for key in arrays["image_keys"]]
    return out
