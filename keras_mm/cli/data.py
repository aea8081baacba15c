"""Datasets of the CLI: the bundled shapes set and the caption-file readers.

Every dataset comes back in one layout, split into `"train"` and `"test"` (and
`"compositional"` for shapes): a split is a dict with `"images"` (each image
once), `"token_ids"` and `"padding_mask"` (one row per caption),
`"caption_image_index"` (the image of each caption), `"labels"` (class ids per
image, or None) and `"captions"`. Shapes splits also hold `"image_attributes"`
and `"caption_attributes"` (`(N, 3)` colour, shape and size ids; -1 where a
caption does not name one), from which training takes its positives.
"""

import json

import keras
import numpy as np

from keras_mm.cli.parser import UsageError
from keras_mm.data import (
    MultimodalPyDataset,
    build_vocabulary,
    encode_texts,
    load_shapes,
    read_coco_captions,
    read_flickr30k_captions,
    read_karpathy_captions,
)

SHAPES = "shapes"
SHAPES_DATA_SEED = 0  # the bundled set is one fixed dataset; --seed drives training
TEXT_KEYS = ("token_ids", "padding_mask")
ATTRIBUTES = ("color", "shape", "size")


def detect_format(path):
    """The reader for a caption file: "coco", "karpathy" or "flickr30k"."""
    if not path.lower().endswith(".json"):
        return "flickr30k"
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot be read as JSON ({error}).") from None
    if isinstance(data, dict) and "annotations" in data:
        return "coco"
    images = data.get("images") if isinstance(data, dict) else None
    if isinstance(images, list) and images and isinstance(images[0], dict):
        if "sentences" in images[0]:
            return "karpathy"
    raise UsageError(
        f"cannot tell the format of {path!r} (neither COCO captions with "
        "'annotations' nor a Karpathy split with 'images[].sentences'); pass --format"
    )


def _shapes(spec):
    data = load_shapes(
        num_train=spec["train_samples"],
        num_test=spec["test_samples"],
        num_compositional=max(spec["test_samples"] // 2, 1),
        image_size=spec["image_size"],
        sequence_length=spec["sequence_length"],
        gray_shapes=spec.get("gray_shapes", 0.0),  # absent in older run.json
        seed=SHAPES_DATA_SEED,
    )
    out = {}
    for split in ("train", "test", "compositional"):
        part = data[split]
        n = len(part["labels"])
        out[split] = {
            "images": part["inputs"]["images"],
            "token_ids": part["inputs"]["token_ids"],
            "padding_mask": part["inputs"]["padding_mask"],
            "caption_image_index": np.arange(n, dtype="int32"),
            "labels": part["labels"],
            "captions": part["captions"],
            "image_attributes": np.stack(
                [part["attributes"][k] for k in ATTRIBUTES], axis=1
            ),
            "caption_attributes": np.stack(
                [part["caption_attributes"][k] for k in ATTRIBUTES], axis=1
            ),
        }
    out["vocabulary"] = data["vocabulary"]
    out["class_names"] = data["class_names"]
    out["class_prompts"] = {k: data["class_prompts"][k] for k in TEXT_KEYS}
    out["class_prompt_texts"] = data["class_prompts"]["prompts"]
    return out


def _read(spec):
    path, root = spec["path"], spec["image_root"]
    common = dict(
        image_size=spec["image_size"],
        sequence_length=spec["sequence_length"],
        max_images=spec["max_images"],
    )
    if spec["format"] == "coco":
        return read_coco_captions(path, root, **common)
    if spec["format"] == "karpathy":
        return read_karpathy_captions(path, root, **common)
    return read_flickr30k_captions(path, root, **common)


def _test_images(spec, data):
    """Boolean mask of the images held out for testing."""
    num_images = len(data["images"])
    splits = data.get("image_splits")
    if splits is not None and "test" in splits and spec["format"] == "karpathy":
        return np.asarray([s == "test" for s in splits])
    num_test = int(round(spec["test_fraction"] * num_images))
    if num_images < 2:
        raise ValueError(
            f"{spec['path']}: a train/test split needs at least 2 captioned "
            f"images; found {num_images}."
        )
    num_test = min(max(num_test, 1), num_images - 1)
    order = np.random.default_rng(spec["split_seed"]).permutation(num_images)
    mask = np.zeros(num_images, dtype=bool)
    mask[order[:num_test]] = True
    return mask


def _take(data, image_mask, vocabulary, sequence_length):
    rows = np.flatnonzero(image_mask)
    new_row = np.full(len(image_mask), -1, dtype="int64")
    new_row[rows] = np.arange(len(rows))
    index = np.asarray(data["caption_image_index"])
    keep = image_mask[index]
    captions = [c for c, k in zip(data["captions"], keep) if k]
    encoded = encode_texts(captions, vocabulary, sequence_length)
    return {
        "images": data["images"][rows],
        "token_ids": encoded["token_ids"],
        "padding_mask": encoded["padding_mask"],
        "caption_image_index": new_row[index[keep]].astype("int32"),
        "labels": None,
        "captions": captions,
    }


def _captions(spec, vocabulary):
    data = _read(spec)
    test = _test_images(spec, data)
    train_captions = [
        c for c, i in zip(data["captions"], data["caption_image_index"]) if not test[i]
    ]
    if vocabulary is None:  # from the training captions only
        vocabulary = build_vocabulary(train_captions)
    length = spec["sequence_length"]
    return {
        "train": _take(data, ~test, vocabulary, length),
        "test": _take(data, test, vocabulary, length),
        "vocabulary": list(vocabulary),
        "class_names": None,
        "class_prompts": None,
    }


def load_dataset(spec, vocabulary=None):
    """Load the dataset a run's `spec` (from `run.json`) describes.

    `vocabulary`: None builds it (shapes: the bundled one; files: from the
    training captions); a run's saved vocabulary re-encodes the same ids.
    """
    data = _shapes(spec) if spec["kind"] == SHAPES else _captions(spec, vocabulary)
    for split in ("train", "test"):
        if len(data[split]["token_ids"]) == 0:
            raise ValueError(f"the {split} split of the dataset is empty")
    return data


def describes(image_attributes, caption_attributes):
    """`(B_image, B_text)` float32 positives: 1 where caption j fits image i.

    A caption fits an image when every attribute it names (ids >= 0; -1 is not
    named, e.g. the size in "a red circle") is the image's: "a red circle"
    fits every red circle of the batch, "a small red circle" the small ones.
    """
    image = np.asarray(image_attributes)[:, None, :]
    caption = np.asarray(caption_attributes)[None, :, :]
    return np.all((caption < 0) | (caption == image), axis=-1).astype("float32")


class TrainingBatches(keras.utils.PyDataset):
    """`(inputs, positives)` batches for `fit`, shuffled per epoch from a seed.

    The order of epoch `e` depends only on `(seed, e)` (`MultimodalPyDataset`),
    so a resumed run sees the batches an uninterrupted one sees. The second
    element marks the positives of CLIP's loss: with attributes (shapes), the
    `describes` matrix, so that "a red circle" and "a picture of a red circle"
    are not negatives of each other's image; otherwise group ids: captions of
    one image, and identical captions, are not pushed apart as negatives.
    """

    def __init__(self, split, batch_size, seed, **kwargs):
        super().__init__(**kwargs)
        num_captions = len(split["token_ids"])
        arrays = {k: split[k] for k in ("images", "token_ids", "padding_mask")}
        if split.get("caption_attributes") is not None:
            index = split["caption_image_index"]
            arrays["image_attributes"] = split["image_attributes"][index]
            arrays["caption_attributes"] = split["caption_attributes"]
        else:
            arrays["group_ids"] = _group_ids(split)
        self.batches = MultimodalPyDataset(
            arrays,
            batch_size=min(batch_size, num_captions),
            seed=seed,
            image_index=split["caption_image_index"],
            drop_remainder=True,
        )

    def set_epoch(self, epoch):
        self.batches.set_epoch(epoch)

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        batch = dict(self.batches[index])
        if "group_ids" in batch:
            return batch, batch.pop("group_ids")
        image = batch.pop("image_attributes")
        return batch, describes(image, batch.pop("caption_attributes"))

    def on_epoch_begin(self):
        self.batches.on_epoch_begin()

    def on_epoch_end(self):
        self.batches.on_epoch_end()


def _group_ids(split):
    _, group_ids = np.unique(split["token_ids"], axis=0, return_inverse=True)
    group_ids = np.asarray(group_ids).reshape(-1).astype("int64")
    if split["labels"] is None:
        # Captions of one image are positives too: group through the image.
        offset = int(group_ids.max()) + 1
        by_image = split["caption_image_index"].astype("int64") + offset
        group_ids = _merge_groups(group_ids, by_image)
    return group_ids.astype("int32")


def _merge_groups(a, b):
    """Connected components of the union of two groupings (union-find)."""
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for x, y in zip(a.tolist(), b.tolist()):
        parent[find(x)] = find(y)
    roots = np.asarray([find(x) for x in a.tolist()])
    return np.unique(roots, return_inverse=True)[1].reshape(-1)
