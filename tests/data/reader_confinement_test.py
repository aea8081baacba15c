"""Readers stay inside the dataset root and refuse bad image files (issue 9.3)."""

import os

import numpy as np
import pytest

from keras_mm.data import (
    read_coco_captions,
    read_flickr30k_captions,
    read_karpathy_captions,
    read_vqa,
)
from tests.data.reader_fixtures import write_image, write_json


def _coco(tmp_path, file_names):
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    data = {
        "images": [{"id": i, "file_name": f} for i, f in enumerate(file_names)],
        "annotations": [
            {"image_id": i, "caption": f"c{i}"} for i in range(len(file_names))
        ],
    }
    return write_json(str(tmp_path / "captions.json"), data), str(root)


@pytest.fixture
def outside(tmp_path):
    return write_image(str(tmp_path / "secret.png"), (1, 2, 3))


@pytest.mark.parametrize("skip_missing", [False, True])
def test_dotdot_escape_is_refused(tmp_path, outside, skip_missing):
    path, root = _coco(tmp_path, ["../secret.png"])
    with pytest.raises(ValueError, match="outside the dataset root") as e:
        read_coco_captions(path, root, image_size=4, skip_missing=skip_missing)
    assert "captions.json" in str(e.value) and r"images[0]" in str(e.value)


def test_dotdot_that_stays_inside_is_fine(tmp_path):
    path, root = _coco(tmp_path, ["sub/../a.png"])
    write_image(os.path.join(root, "a.png"))
    os.makedirs(os.path.join(root, "sub"))
    assert read_coco_captions(path, root, image_size=4)["images"].shape == (1, 4, 4, 3)


@pytest.mark.parametrize("skip_missing", [False, True])
def test_absolute_paths_are_refused(tmp_path, outside, skip_missing):
    for name in (outside, "C:\\data\\x.jpg", "\\\\server\\share\\x.jpg"):
        path, root = _coco(tmp_path, [name])
        with pytest.raises(ValueError, match="absolute image path"):
            read_coco_captions(path, root, image_size=4, skip_missing=skip_missing)


@pytest.mark.parametrize("skip_missing", [False, True])
def test_symlink_pointing_outside_is_refused(tmp_path, outside, skip_missing):
    path, root = _coco(tmp_path, ["link.png", "inside_link.png"])
    os.symlink(outside, os.path.join(root, "link.png"))
    with pytest.raises(ValueError, match="link.png.*outside the dataset root"):
        read_coco_captions(path, root, image_size=4, skip_missing=skip_missing)
    # A symlinked directory leading out is refused the same way.
    os.remove(os.path.join(root, "link.png"))
    os.symlink(str(tmp_path), os.path.join(root, "up"))
    path, root = _coco(tmp_path, ["up/secret.png"])
    with pytest.raises(ValueError, match="outside the dataset root"):
        read_coco_captions(path, root, image_size=4)


def test_symlink_inside_the_root_is_fine(tmp_path):
    path, root = _coco(tmp_path, ["link.png"])
    write_image(os.path.join(root, "real.png"), (0, 255, 0))
    os.symlink(os.path.join(root, "real.png"), os.path.join(root, "link.png"))
    data = read_coco_captions(path, root, image_size=4)
    np.testing.assert_allclose(data["images"][0, 0, 0], [0, 1, 0])


def test_every_reader_is_confined(tmp_path, outside):
    root = tmp_path / "root"
    root.mkdir()
    karpathy = write_json(
        str(tmp_path / "k.json"),
        {
            "images": [
                {
                    "filepath": "..",
                    "filename": "secret.png",
                    "split": "test",
                    "sentences": [{"raw": "x"}],
                }
            ]
        },
    )
    with pytest.raises(ValueError, match="k.json.*outside the dataset root"):
        read_karpathy_captions(karpathy, str(root))
    (tmp_path / "r.token").write_text("../secret.png#0\tx\n")
    with pytest.raises(ValueError, match="r.token: line 1.*outside the dataset root"):
        read_flickr30k_captions(str(tmp_path / "r.token"), str(root))
    write_image(str(tmp_path / "secret1.png"))
    questions = write_json(
        str(tmp_path / "q.json"),
        {"questions": [{"image_id": 1, "question": "q?", "question_id": 1}]},
    )
    with pytest.raises(ValueError, match="q.json.*outside the dataset root"):
        read_vqa(questions, str(root), image_file_pattern="../secret{image_id}.png")
    with pytest.raises(ValueError, match="image_file_pattern"):
        read_vqa(questions, str(root), image_file_pattern="{image_id:.2}.png")


def _bad_images(root):
    good = write_image(os.path.join(root, "good.jpg"), (255, 0, 0), size=(64, 48))
    with open(os.path.join(root, "garbage.jpg"), "wb") as f:
        f.write(b"this is not an image at all")
    with open(good, "rb") as f:
        jpeg = f.read()
    with open(os.path.join(root, "truncated.jpg"), "wb") as f:
        f.write(jpeg[: len(jpeg) // 2])
    write_image(os.path.join(root, "big.png"), size=(300, 200))


@pytest.mark.parametrize(
    "name, message",
    [
        ("garbage.jpg", "garbage.jpg: corrupt, truncated or unsupported image"),
        ("truncated.jpg", "truncated.jpg: corrupt, truncated or unsupported image"),
        (
            "big.png",
            "big.png: image of 300x200 = 60000 pixels exceeds max_pixels=50000",
        ),
    ],
)
def test_bad_image_files_name_the_file(tmp_path, name, message):
    path, root = _coco(tmp_path, ["good.jpg", name])
    _bad_images(root)
    with pytest.raises(ValueError, match=message) as e:
        read_coco_captions(path, root, image_size=4, max_pixels=50_000)
    assert r"images[1] (id=1)" in str(e.value) and "captions.json" in str(e.value)


def test_skip_missing_skips_bad_images_and_reports_count(tmp_path):
    names = ["good.jpg", "garbage.jpg", "truncated.jpg", "big.png", "absent.jpg"]
    path, root = _coco(tmp_path, names)
    _bad_images(root)
    with pytest.warns(UserWarning, match="skipped 4 of 5 records"):
        data = read_coco_captions(
            path, root, image_size=4, max_pixels=50_000, skip_missing=True
        )
    assert data["num_skipped"] == 4
    assert data["image_files"] == ["good.jpg"] and data["captions"] == ["c0"]
    # Nothing skipped: no warning, and the default pixel limit admits big.png.
    data = read_coco_captions(*_coco(tmp_path, ["good.jpg", "big.png"]), image_size=4)
    assert data["num_skipped"] == 0 and len(data["images"]) == 2
