"""Private: parse an annotation file once into (image path, text, group) records.

Used by `ImageTextDataset` for every format but tar shards (which are read
lazily, shard by shard). Only text is held: the images are decoded later, in the
tf.data pipeline. Malformed annotation files are always a `ValueError` naming the
file and the record, as in the array readers (`read_coco_captions`, ...).
"""

import csv
import json
import os
import re

from keras_mm.data._files import get_field, get_list, read_json, read_text
from keras_mm.data.karpathy_captions import KARPATHY_SPLITS
from keras_mm.data.karpathy_captions import _caption as karpathy_caption

FORMATS = ("coco", "karpathy", "flickr30k", "vqa", "csv", "tar", "folder", "images")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
_BRACE = re.compile(r"\{(\d+)\.\.(\d+)\}")


class Records:
    """Parallel lists: image path (relative to `root`), text, group id."""

    def __init__(self, source, root, paths, texts, groups, class_names=None):
        if not paths:
            raise ValueError(f"{source}: no (image, text) records found.")
        self.source, self.root = source, root
        self.paths, self.texts, self.groups = paths, texts, groups
        self.class_names = class_names


def expand_braces(pattern):
    """`shard-{000..002}.tar` -> the 3 names (zero padding kept), like webdataset."""
    match = _BRACE.search(pattern)
    if match is None:
        return [pattern]
    lo, hi = match.group(1), match.group(2)
    if int(hi) < int(lo):
        raise ValueError(
            f"`source` brace range {match.group(0)} is empty (end before start). "
            f"Received: {pattern!r}"
        )
    width = len(lo) if lo.startswith("0") or len(lo) == len(hi) else 0
    head, tail = pattern[: match.start()], pattern[match.end() :]
    out = []
    for i in range(int(lo), int(hi) + 1):
        out.extend(expand_braces(f"{head}{i:0{width}d}{tail}"))
    return out


def detect_format(source):
    """The format of `source` from its path (and a JSON file's top-level keys)."""
    source = os.fspath(source)
    lower = source.lower()
    if _BRACE.search(source) or lower.endswith(".tar"):
        return "tar"
    if os.path.isdir(source):
        return "folder"
    if lower.endswith((".csv", ".tsv")):
        return "csv"
    if lower.endswith((".token", ".txt")):
        return "flickr30k"
    if lower.endswith(".json"):
        data = read_json(source, "source")
        if "questions" in data:
            return "vqa"
        if "annotations" in data:
            return "coco"
        images = data.get("images")
        if isinstance(images, list) and images and isinstance(images[0], dict):
            if "sentences" in images[0]:
                return "karpathy"
    raise ValueError(
        "Cannot tell the format of `source` from its path: expected a COCO, "
        "Karpathy or VQA .json, a .csv/.tsv, a Flickr30K .token/.txt, a .tar or "
        f"brace pattern of tar shards, or a directory; pass `format=` one of "
        f"{FORMATS}. Received: source={source!r}"
    )


def coco_records(source, root):
    data = read_json(source, "source")
    files, paths, texts, groups = {}, [], [], []
    for i, entry in enumerate(get_list(data, "images", source)):
        image_id = get_field(entry, "id", "int", source, f"images[{i}]")
        files[image_id] = get_field(entry, "file_name", "str", source, f"images[{i}]")
    for i, ann in enumerate(get_list(data, "annotations", source)):
        where = f"annotations[{i}]"
        image_id = get_field(ann, "image_id", "int", source, where)
        caption = get_field(ann, "caption", "str", source, where)
        if image_id not in files:
            raise ValueError(
                f"{source}: {where} points at image_id {image_id}, which is not in "
                '"images".'
            )
        paths.append(files[image_id])
        texts.append(caption.strip())
        groups.append(image_id)
    return Records(source, root, paths, texts, groups)


def karpathy_records(source, root, split=None):
    wanted = (
        set(KARPATHY_SPLITS)
        if split is None
        else set([split] if isinstance(split, str) else split)
    )
    if not wanted or not wanted <= set(KARPATHY_SPLITS):
        raise ValueError(
            f"`split` must be None or from {KARPATHY_SPLITS}. Received: {split!r}"
        )
    data = read_json(source, "source")
    paths, texts, groups = [], [], []
    for i, entry in enumerate(get_list(data, "images", source)):
        where = f"images[{i}]"
        filename = get_field(entry, "filename", "str", source, where)
        if get_field(entry, "split", "str", source, where) not in wanted:
            continue
        rel = filename
        if entry.get("filepath") is not None:
            rel = os.path.join(get_field(entry, "filepath", "str", source, where), rel)
        for j, sentence in enumerate(
            get_field(entry, "sentences", "list", source, where)
        ):
            paths.append(rel)
            texts.append(karpathy_caption(sentence, source, f"{where} sentences[{j}]"))
            groups.append(i)
    return Records(source, root, paths, texts, groups)


def flickr30k_records(source, root):
    from keras_mm.data.flickr30k_captions import _parse

    paths, texts, groups, ids = [], [], [], {}
    for _, image, caption in _parse(read_text(source, "source"), source):
        paths.append(image)
        texts.append(caption)
        groups.append(ids.setdefault(image, len(ids)))
    return Records(source, root, paths, texts, groups)


def vqa_records(source, root, image_file_pattern):
    data = read_json(source, "source")
    subtype = data.get("data_subtype")
    paths, texts, groups = [], [], []
    for i, q in enumerate(get_list(data, "questions", source)):
        where = f"questions[{i}]"
        image_id = get_field(q, "image_id", "int", source, where)
        texts.append(get_field(q, "question", "str", source, where).strip())
        paths.append(image_file_pattern.format(image_id=image_id, data_subtype=subtype))
        groups.append(image_id)
    return Records(source, root, paths, texts, groups)


def csv_records(source, root, image_key, caption_key, separator):
    """open_clip's convention: a header row, `image_key` and `caption_key` columns."""
    if separator is None:
        separator = "\t" if source.lower().endswith(".tsv") else ","
    text = read_text(source, "source")
    rows = csv.reader(text.splitlines(), delimiter=separator)
    header = next(rows, None) or []
    missing = [k for k in (image_key, caption_key) if k not in header]
    if missing:
        raise ValueError(
            f"{source}: the header row has no column {missing[0]!r} (`image_key` / "
            f"`caption_key`; separator {separator!r}). Received header: {header}"
        )
    col_image, col_text = header.index(image_key), header.index(caption_key)
    paths, texts, groups = [], [], []
    for number, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(
                f"{source}: line {number} has {len(row)} fields; the header has "
                f"{len(header)}. Received: {separator.join(row)[:100]!r}"
            )
        paths.append(row[col_image])
        texts.append(row[col_text].strip())
        groups.append(number)
    return Records(source, root, paths, texts, groups)


def folder_records(source, prompt):
    """Class-per-folder: `source/<class>/<image>`; the text is the class prompt."""
    classes = sorted(
        d for d in os.listdir(source) if os.path.isdir(os.path.join(source, d))
    )
    paths, texts, groups = [], [], []
    for label, name in enumerate(classes):
        for file in sorted(os.listdir(os.path.join(source, name))):
            if file.lower().endswith(IMAGE_EXTENSIONS):
                paths.append(os.path.join(name, file))
                texts.append(prompt.format(name.replace("_", " ")))
                groups.append(label)
    return Records(source, source, paths, texts, groups, class_names=classes)


def image_records(source):
    """Every image file under `source` (recursively, sorted), with empty texts."""
    paths = []
    for directory, dirs, files in os.walk(source):
        dirs.sort()
        rel = os.path.relpath(directory, source)
        for file in sorted(files):
            if file.lower().endswith(IMAGE_EXTENSIONS):
                paths.append(file if rel == "." else os.path.join(rel, file))
    if not paths:
        raise ValueError(
            f"{source}: no image files found (extensions "
            f"{', '.join(IMAGE_EXTENSIONS)})."
        )
    return Records(source, source, paths, [""] * len(paths), list(range(len(paths))))


def tar_text(name, data):
    """The caption of a tar sample from its `.txt` or `.json` member's bytes."""
    text = data.decode("utf-8")
    if name.endswith(".json"):
        value = json.loads(text)
        text = (
            value.get("caption", value.get("text")) if isinstance(value, dict) else None
        )
        if not isinstance(text, str):
            raise ValueError("the .json member has no 'caption' or 'text' string")
    if not text.strip():
        raise ValueError("the caption is empty")
    return text.strip()


def hold_out(stream, split, fraction):
    """Keep the `split` ("train" or "test") part of a stream's records or shards."""
    import zlib

    if split not in ("train", "test") or not 0 < fraction < 1:
        raise ValueError(
            "`test_fraction` needs `split='train'` or `'test'` and a fraction in "
            f"(0, 1). Received: split={split!r}, test_fraction={fraction!r}"
        )

    def keep(ref):
        return (zlib.crc32(ref.encode()) % 10_000 < fraction * 10_000) == (
            split == "test"
        )

    if stream.shards is not None:  # tar samples: filtered as they are read
        stream.keep = lambda ref: keep(os.path.basename(ref))
        return
    r = stream.records
    rows = [i for i, path in enumerate(r.paths) if keep(path)]
    stream.records = Records(
        r.source,
        r.root,
        [r.paths[i] for i in rows],
        [r.texts[i] for i in rows],
        [r.groups[i] for i in rows],
        r.class_names,
    )
