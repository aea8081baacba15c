import os

import numpy as np
import pytest

from keras_mm.data import encode_texts, read_coco_captions
from tests.data.reader_fixtures import coco_layout, write_json


def test_reads_images_and_captions(tmp_path):
    path, images_dir, _ = coco_layout(str(tmp_path))
    data = read_coco_captions(path, images_dir, image_size=(8, 10), sequence_length=6)
    # Only captioned images, in the order of "images"; captions in file order.
    assert data["image_ids"] == [3, 1, 2]
    assert data["image_files"] == [
        "000000000003.png",
        "000000000001.jpg",
        "000000000002.jpg",
    ]
    assert data["images"].shape == (3, 8, 10, 3)
    assert data["images"].dtype == np.float32
    # Solid colours survive decoding and resizing (PNG exact, JPEG close).
    np.testing.assert_allclose(
        data["images"][0], np.broadcast_to([0, 0, 1], (8, 10, 3))
    )
    np.testing.assert_allclose(data["images"][1].mean((0, 1)), [1, 0, 0], atol=0.02)
    np.testing.assert_allclose(data["images"][2].mean((0, 1)), [0, 1, 0], atol=0.02)
    assert data["captions"] == [
        "A red square.",
        "A green square on a table",
        "Something red",
        "A blue square",
        "green",
    ]
    np.testing.assert_array_equal(data["caption_image_index"], [1, 2, 1, 0, 2])
    assert data["caption_image_index"].dtype == np.int32
    want = encode_texts(data["captions"], data["vocabulary"], 6)
    np.testing.assert_array_equal(data["token_ids"], want["token_ids"])
    np.testing.assert_array_equal(data["padding_mask"], want["padding_mask"])
    assert data["token_ids"].shape == (5, 6) and data["token_ids"].dtype == np.int32
    assert "square" in data["vocabulary"] and data["num_skipped"] == 0


def test_given_vocabulary_and_max_images(tmp_path):
    path, images_dir, _ = coco_layout(str(tmp_path))
    vocab = ["[PAD]", "[UNK]", "a", "red"]
    data = read_coco_captions(
        path,
        images_dir,
        image_size=4,
        sequence_length=3,
        vocabulary=vocab,
        max_images=2,
    )
    assert data["image_ids"] == [3, 1]
    assert data["captions"] == ["A red square.", "Something red", "A blue square"]
    assert data["vocabulary"] == vocab
    np.testing.assert_array_equal(data["token_ids"], [[2, 3, 1], [1, 3, 0], [2, 1, 1]])


def test_squash_instead_of_crop(tmp_path):
    from PIL import Image

    images_dir = tmp_path / "img"
    images_dir.mkdir()
    left_red_right_blue = np.zeros((4, 12, 3), "uint8")
    left_red_right_blue[:, :2] = [255, 0, 0]
    left_red_right_blue[:, 2:] = [0, 0, 255]
    Image.fromarray(left_red_right_blue).save(images_dir / "a.png")
    ann = write_json(
        str(tmp_path / "c.json"),
        {
            "images": [{"id": 1, "file_name": "a.png"}],
            "annotations": [{"image_id": 1, "caption": "x"}],
        },
    )
    cropped = read_coco_captions(ann, str(images_dir), image_size=4)["images"][0]
    squashed = read_coco_captions(
        ann, str(images_dir), image_size=4, crop_to_aspect_ratio=False
    )["images"][0]
    assert cropped[..., 0].max() == 0  # the red edge is cropped away
    assert squashed[:, 0, 0].min() > 0.5  # squashed: still there


def _broken(tmp_path, mutate):
    path, images_dir, data = coco_layout(str(tmp_path))
    mutate(data)
    write_json(path, data)
    return path, images_dir


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("annotations"), "'annotations' must be a list. It is missing"),
        (
            lambda d: d["annotations"][1].pop("caption"),
            r"annotations\[1\] has no 'caption'",
        ),
        (
            lambda d: d["annotations"][2].update(caption=""),
            r"annotations\[2\] 'caption'",
        ),
        (lambda d: d["images"][0].pop("file_name"), r"images\[0\] has no 'file_name'"),
        (
            lambda d: d["images"][1].update(id="1"),
            r"images\[1\] 'id' must be an integer",
        ),
        (
            lambda d: d["images"].append({"id": 1, "file_name": "x.jpg"}),
            "repeats image id 1",
        ),
        (
            lambda d: d["annotations"][3].update(image_id=99),
            r"annotations\[3\] \(caption 'A blue square\\n'\) points at image_id 99",
        ),
    ],
)
def test_malformed_records_name_file_and_record(tmp_path, mutate, message):
    path, images_dir = _broken(tmp_path, mutate)
    with pytest.raises(ValueError, match=message) as info:
        read_coco_captions(path, images_dir, image_size=4)
    assert "captions_val2017.json" in str(info.value)


def test_missing_and_malformed_files(tmp_path):
    path, images_dir, _ = coco_layout(str(tmp_path))
    with pytest.raises(ValueError, match="nope.json: file not found"):
        read_coco_captions(str(tmp_path / "nope.json"), images_dir)
    with pytest.raises(ValueError, match="image_dir"):
        read_coco_captions(path, str(tmp_path / "no_dir"))
    with open(path, "w") as f:
        f.write('{"images": [\n  {"id": 1,}\n]}')
    with pytest.raises(
        ValueError, match="captions_val2017.json: malformed JSON at line 2"
    ):
        read_coco_captions(path, images_dir)
    with open(path, "w") as f:
        f.write("[1, 2]")
    with pytest.raises(ValueError, match="top level must be a JSON object"):
        read_coco_captions(path, images_dir)


def test_missing_image_file_is_an_error_naming_it(tmp_path):
    path, images_dir, _ = coco_layout(str(tmp_path))
    os.remove(os.path.join(images_dir, "000000000002.jpg"))
    with pytest.raises(ValueError, match="000000000002.jpg: image file not found") as e:
        read_coco_captions(path, images_dir, image_size=4)
    assert r"images[2] (id=2)" in str(e.value)
    assert "captions_val2017.json" in str(e.value)


def test_skip_missing_drops_and_reports(tmp_path):
    path, images_dir, data = coco_layout(str(tmp_path))
    os.remove(os.path.join(images_dir, "000000000002.jpg"))
    data["annotations"].append({"image_id": 42, "caption": "dangling"})
    write_json(path, data)
    with pytest.warns(UserWarning, match="skipped 3 of 6 records"):
        out = read_coco_captions(path, images_dir, image_size=4, skip_missing=True)
    assert out["num_skipped"] == 3
    assert out["image_ids"] == [3, 1]
    assert out["captions"] == ["A red square.", "Something red", "A blue square"]
    np.testing.assert_array_equal(out["caption_image_index"], [1, 1, 0])
