"""Writers of small real-format dataset files for the reader tests."""

import json
import os

import numpy as np
from PIL import Image

COLORS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def write_image(path, color=(255, 0, 0), size=(20, 16), fmt=None):
    """A solid-colour image of `size` (width, height), JPEG or PNG by extension."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    array = np.zeros((size[1], size[0], 3), dtype="uint8") + np.array(color, "uint8")
    Image.fromarray(array).save(path, format=fmt)
    return path


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)
    return path


def coco_layout(root):
    """COCO captions: 3 images (2 JPEG, 1 PNG), 5 captions, image 3 listed first."""
    images_dir = os.path.join(root, "val2017")
    write_image(os.path.join(images_dir, "000000000001.jpg"), COLORS["red"])
    write_image(os.path.join(images_dir, "000000000002.jpg"), COLORS["green"])
    write_image(os.path.join(images_dir, "000000000003.png"), COLORS["blue"])
    data = {
        "info": {"description": "fixture"},
        "licenses": [],
        "images": [
            {"id": 3, "file_name": "000000000003.png", "height": 16, "width": 20},
            {"id": 1, "file_name": "000000000001.jpg", "height": 16, "width": 20},
            {"id": 2, "file_name": "000000000002.jpg", "height": 16, "width": 20},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "caption": "A red square."},
            {"id": 11, "image_id": 2, "caption": "A green square on a table"},
            {"id": 12, "image_id": 1, "caption": "Something red"},
            {"id": 13, "image_id": 3, "caption": "A blue square\n"},
            {"id": 14, "image_id": 2, "caption": "green"},
        ],
    }
    path = write_json(os.path.join(root, "captions_val2017.json"), data)
    return path, images_dir, data
