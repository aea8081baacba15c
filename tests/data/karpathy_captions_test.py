import os

import numpy as np
import pytest

from keras_mm.data import read_karpathy_captions
from tests.data.reader_fixtures import write_image, write_json


def _coco_karpathy(root):
    write_image(os.path.join(root, "val2014", "COCO_val2014_1.jpg"), (255, 0, 0))
    write_image(os.path.join(root, "train2014", "COCO_train2014_2.jpg"), (0, 255, 0))
    write_image(os.path.join(root, "val2014", "COCO_val2014_3.jpg"), (0, 0, 255))
    data = {
        "dataset": "coco",
        "images": [
            {
                "filepath": "val2014",
                "filename": "COCO_val2014_1.jpg",
                "imgid": 0,
                "split": "test",
                "cocoid": 1,
                "sentids": [0, 1],
                "sentences": [
                    {
                        "tokens": ["a", "red", "thing"],
                        "raw": "A red thing.",
                        "imgid": 0,
                        "sentid": 0,
                    },
                    {
                        "tokens": ["red", "square"],
                        "raw": "Red square",
                        "imgid": 0,
                        "sentid": 1,
                    },
                ],
            },
            {
                "filepath": "train2014",
                "filename": "COCO_train2014_2.jpg",
                "imgid": 1,
                "split": "train",
                "cocoid": 2,
                "sentids": [2],
                "sentences": [{"tokens": ["green"], "raw": "Green", "sentid": 2}],
            },
            {
                "filepath": "val2014",
                "filename": "COCO_val2014_3.jpg",
                "imgid": 2,
                "split": "restval",
                "cocoid": 3,
                "sentids": [3],
                "sentences": [{"tokens": ["a", "blue", "one"], "sentid": 3}],
            },
        ],
    }
    return write_json(os.path.join(root, "dataset_coco.json"), data), data


def test_reads_all_splits_with_filepath(tmp_path):
    path, _ = _coco_karpathy(str(tmp_path))
    data = read_karpathy_captions(path, str(tmp_path), image_size=6, sequence_length=5)
    assert data["image_ids"] == [1, 2, 3]
    assert data["image_splits"] == ["test", "train", "restval"]
    assert data["image_files"][1] == os.path.join("train2014", "COCO_train2014_2.jpg")
    # "raw" is the caption; without it the tokens are joined.
    assert data["captions"] == ["A red thing.", "Red square", "Green", "a blue one"]
    np.testing.assert_array_equal(data["caption_image_index"], [0, 0, 1, 2])
    np.testing.assert_allclose(data["images"][2].mean((0, 1)), [0, 0, 1], atol=0.02)
    assert data["token_ids"].shape == (4, 5)


def test_split_filter(tmp_path):
    path, _ = _coco_karpathy(str(tmp_path))
    train = read_karpathy_captions(
        path, str(tmp_path), split=["train", "restval"], image_size=4
    )
    assert train["image_ids"] == [2, 3]
    test = read_karpathy_captions(path, str(tmp_path), split="test", image_size=4)
    assert test["captions"] == ["A red thing.", "Red square"]
    with pytest.raises(ValueError, match="split"):
        read_karpathy_captions(path, str(tmp_path), split="dev")


def test_flickr_layout_without_filepath_uses_imgid(tmp_path):
    write_image(str(tmp_path / "img" / "1000092795.jpg"))
    path = write_json(
        str(tmp_path / "dataset_flickr30k.json"),
        {
            "images": [
                {
                    "filename": "1000092795.jpg",
                    "imgid": 0,
                    "split": "val",
                    "sentences": [{"raw": "Two young guys", "tokens": []}],
                }
            ]
        },
    )
    data = read_karpathy_captions(path, str(tmp_path / "img"), image_size=4)
    assert data["image_ids"] == [0] and data["captions"] == ["Two young guys"]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["images"][1].update(split="holdout"), r"images\[1\].*'holdout'"),
        (
            lambda d: d["images"][0]["sentences"].append({"raw": ""}),
            r"images\[0\] \(val2014/COCO_val2014_1.jpg\) sentences\[2\]",
        ),
        (lambda d: d["images"][2].pop("sentences"), r"images\[2\] has no 'sentences'"),
        (lambda d: d["images"][2].update(cocoid=1), "repeats image id 1"),
    ],
)
def test_malformed_records(tmp_path, mutate, message):
    path, data = _coco_karpathy(str(tmp_path))
    mutate(data)
    write_json(path, data)
    with pytest.raises(ValueError, match=message) as info:
        read_karpathy_captions(path, str(tmp_path), image_size=4)
    assert "dataset_coco.json" in str(info.value)
