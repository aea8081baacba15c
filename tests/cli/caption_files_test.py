"""`keras-mm train/evaluate` on caption files (COCO, Karpathy, Flickr30K)."""

import json

import numpy as np
import pytest
from PIL import Image

from keras_mm.cli import main
from keras_mm.cli.data import _merge_groups, detect_format, load_dataset
from keras_mm.cli.evaluation import class_level_recall
from keras_mm.cli.plots import pca_2d
from keras_mm.cli.training import resolve_config  # noqa: F401  (import check)

COLORS = {"red": (230, 20, 20), "green": (20, 200, 20), "blue": (30, 60, 240)}


def write_images(root, count):
    """`count` solid-colour PNGs; returns `[(file_name, colour), ...]`."""
    root.mkdir(parents=True, exist_ok=True)
    names = sorted(COLORS)
    files = []
    for i in range(count):
        colour = names[i % len(names)]
        array = np.zeros((12, 12, 3), "uint8") + np.array(COLORS[colour], "uint8")
        name = f"{i:03d}.png"
        Image.fromarray(array).save(root / name)
        files.append((name, colour))
    return files


def write_coco(tmp_path, count=9):
    files = write_images(tmp_path / "images", count)
    data = {
        "images": [{"id": i, "file_name": f} for i, (f, _) in enumerate(files)],
        "annotations": [
            {"image_id": i, "id": 2 * i + j, "caption": text}
            for i, (_, colour) in enumerate(files)
            for j, text in enumerate((f"a {colour} square", f"something {colour}"))
        ],
    }
    path = tmp_path / "captions_val2017.json"
    path.write_text(json.dumps(data))
    return path


def test_train_and_evaluate_on_coco_captions(tmp_path, capsys):
    path = write_coco(tmp_path)
    run = tmp_path / "run"
    argv = ["train", "--dataset", str(path), "--image-root", str(tmp_path / "images")]
    argv += ["--image-size", "16", "--sequence-length", "6", "--test-fraction", "0.34"]
    argv += ["--epochs", "1", "--batch-size", "8", "--width", "8", "--embed-dim", "8"]
    argv += ["--verbose", "0", "--output", str(run)]
    assert main(argv) == 0
    config = json.loads((run / "run.json").read_text())
    assert config["dataset"]["format"] == "coco"
    assert main(["evaluate", str(run), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "n/a (no classes)" in out and "image->text R@1" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_images"] == 3 and metrics["test_captions"] == 6


def test_split_holds_out_whole_images_and_train_vocabulary(tmp_path):
    path = write_coco(tmp_path)
    spec = {
        "kind": "file",
        "path": str(path),
        "image_root": str(tmp_path / "images"),
        "format": "coco",
        "image_size": 8,
        "sequence_length": 6,
        "test_fraction": 0.34,
        "max_images": None,
        "split_seed": 0,
    }
    data = load_dataset(spec)
    train, test = data["train"], data["test"]
    assert len(train["images"]) == 6 and len(test["images"]) == 3
    assert len(train["token_ids"]) == 12 and len(test["token_ids"]) == 6
    # Each split's captions point at that split's images, two per image.
    for split in (train, test):
        counts = np.bincount(split["caption_image_index"])
        assert counts.tolist() == [2] * len(split["images"])
    # The vocabulary comes from the training captions only.
    words = {w for c in train["captions"] for w in c.split()}
    assert set(data["vocabulary"]) - {"[PAD]", "[UNK]"} == words
    # The same spec and vocabulary give the same split (evaluate re-reads it).
    again = load_dataset(spec, data["vocabulary"])
    np.testing.assert_array_equal(again["test"]["token_ids"], test["token_ids"])
    np.testing.assert_array_equal(again["test"]["images"], test["images"])


def test_detect_format(tmp_path):
    coco = write_coco(tmp_path, count=3)
    karpathy = tmp_path / "dataset_flickr30k.json"
    karpathy.write_text(
        json.dumps(
            {"images": [{"filename": "a.jpg", "split": "test", "sentences": []}]}
        )
    )
    flickr = tmp_path / "results_20130124.token"
    flickr.write_text("a.jpg#0\ta dog\n")
    assert detect_format(str(coco)) == "coco"
    assert detect_format(str(karpathy)) == "karpathy"
    assert detect_format(str(flickr)) == "flickr30k"


def test_merge_groups():
    a = np.array([0, 1, 2, 3, 4])
    b = np.array([10, 10, 11, 12, 11])
    groups = _merge_groups(a, b)
    assert groups[0] == groups[1] and groups[2] == groups[4]
    assert len(set(groups.tolist())) == 3


def test_class_level_recall_matches_brute_force():
    rng = np.random.default_rng(0)
    sim = rng.normal(size=(7, 9))
    queries, items = rng.integers(0, 3, 7), rng.integers(0, 3, 9)
    items[:3] = [0, 1, 2]  # every class has an item
    got = class_level_recall(sim, queries, items, ks=(1, 2))
    for k in (1, 2):
        hits = [
            queries[i] in items[np.argsort(-sim[i], kind="stable")[:k]]
            for i in range(7)
        ]
        assert got[k] == pytest.approx(np.mean(hits))


def test_pca_2d_finds_the_main_axis():
    t = np.linspace(-1, 1, 50)
    x = np.stack([t, 2 * t, np.zeros_like(t)], axis=1)
    x += np.random.default_rng(0).normal(scale=1e-3, size=x.shape)
    points = pca_2d(x)
    assert points.shape == (50, 2)
    np.testing.assert_allclose(np.abs(points[:, 0]), np.abs(t) * np.sqrt(5), atol=0.01)
    assert np.std(points[:, 1]) < 0.01
