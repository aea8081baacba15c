"""`keras-mm classify`, `index` and `search` against CLIP + NumPy in Python.

The oracle encodes the same photographs (scikit-image's) with the run's model:
pixels from `ImageTextDataset` in record order (no refs involved), texts with
`encode_texts`, then `encode_image` / `encode_text`, cosine similarities and
sorts in NumPy. The CLI is called in-process (`keras_mm.cli.main`).
"""

import csv
import json
import os

import keras
import numpy as np
import pytest

from keras_mm.cli import encoding as encoding_module
from keras_mm.cli import indexing as indexing_module
from keras_mm.cli import main
from keras_mm.cli.encoding import read_image_bytes
from keras_mm.data import ImageTextDataset, encode_texts
from tests.data import stream_fixtures as fx

NAMES = [
    "astronaut.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "no_time_for_that_tiny.gif",
    "retina.jpg",
    "rocket.jpg",
    "logo.png",
    "motorcycle_left.png",
]
LABELS = ["blue", "green", "red"]  # fx.write_folder's class folders, sorted
TEMPLATES = ["a photo of a {}.", "the {} photo."]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BROKEN = "broken.jpg"


def unit(x):
    x = np.asarray(x, dtype="float64")
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def oracle(trained_run, tmp_path_factory):
    """Photos on disk (tree, flat, tar) and their embeddings by CLIP in Python."""
    root = tmp_path_factory.mktemp("photos")
    tree = fx.write_folder(str(root / "tree"), NAMES)
    flat = str(root / "flat")  # the photos and one file that is no image
    fx.copy_photos(flat, NAMES)
    with open(os.path.join(flat, BROKEN), "wb") as f:
        f.write(b"not an image at all")
    config = json.loads((trained_run / "run.json").read_text())["dataset"]
    vocabulary = json.loads((trained_run / "vocabulary.json").read_text())
    model = keras.saving.load_model(str(trained_run / "model.keras"), compile=False)
    stream = ImageTextDataset(
        tree,
        format="folder",
        batch_size=3,
        image_size=config["image_size"],
        vocabulary=vocabulary,
        sequence_length=config["sequence_length"],
        shuffle=False,
        drop_remainder=False,
        with_group_ids=False,
    )
    pixels = np.concatenate([b["images"] for b in stream])
    images = unit(model.encode_image(pixels))
    paths = stream.records.paths  # "red/astronaut.png", ... in stream order

    def encode(texts):
        tokens = encode_texts(texts, vocabulary, config["sequence_length"])
        return unit(model.encode_text(tokens))

    return {
        "tree": tree,
        "flat": flat,
        "tar": fx.write_tar(str(root / "tar"), NAMES),
        "paths": paths,
        "by_name": {os.path.basename(p): e for p, e in zip(paths, images)},
        "images": images,
        "encode": encode,
        "pixels": dict(zip(paths, pixels)),
    }


def assert_same_ranking(files, scores, oracle_files, oracle_scores, atol=1e-5):
    """Scores agree; the order agrees wherever the oracle's scores are not tied."""
    np.testing.assert_allclose(scores, oracle_scores, atol=atol)
    for i, (f, g) in enumerate(zip(files, oracle_files)):
        if f != g:
            # Only a tie (within float error of batched matmuls) may swap two.
            assert abs(oracle_scores[i] - scores[i]) <= atol, (files, oracle_files)


def test_classify_tree_matches_numpy(trained_run, oracle, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["classify", str(trained_run), "--images", oracle["tree"]]
    for t in TEMPLATES:
        argv += ["--template", t]
    argv += ["--output", str(out), "--batch-size", "3", "--top-k", "2"]
    assert main(argv) == 0
    # Oracle: CLIP's prompt ensembling by hand, cosine scores, top-2.
    weights = unit(
        np.mean([oracle["encode"]([t.format(c) for c in LABELS]) for t in TEMPLATES], 0)
    )
    similarity = oracle["images"] @ weights.T
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :2]
    predictions = json.loads((out / "predictions.json").read_text())["predictions"]
    assert [p["file"] for p in predictions] == oracle["paths"]
    for n, p in enumerate(predictions):
        want = np.take_along_axis(similarity[n], order[n], 0)
        np.testing.assert_allclose(p["scores"], want, atol=1e-5)
        if want[0] - want[1] > 1e-5:  # not a tie
            assert p["labels"] == [LABELS[i] for i in order[n]]
        assert p["true_label"] == p["file"].split(os.sep)[0]
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == oracle["paths"]
    assert [r["label_1"] for r in rows] == [p["labels"][0] for p in predictions]
    # Accuracy and confusion matrix: a NumPy count of the CLI's own top-1.
    metrics = json.loads((out / "metrics.json").read_text())
    true = np.asarray([LABELS.index(p.split(os.sep)[0]) for p in oracle["paths"]])
    predicted = np.asarray([LABELS.index(p["labels"][0]) for p in predictions])
    expected = np.zeros((3, 3), dtype=int)
    for t, p in zip(true, predicted):
        expected[t, p] += 1
    assert metrics["labels"] == LABELS
    assert metrics["confusion_matrix"] == expected.tolist()
    assert metrics["accuracy"] == pytest.approx(np.mean(true == predicted))
    assert metrics["images"] == len(NAMES)
    assert (out / "contact_sheet.png").read_bytes()[:8] == PNG_MAGIC
    assert "accuracy (top-1)" in capsys.readouterr().out


def test_index_is_one_streaming_pass_and_search_matches_numpy(
    trained_run, oracle, tmp_path, monkeypatch, capsys
):
    events, streams = [], []
    encode_batches = encoding_module.RunModel.encode_batches
    append = indexing_module.EmbeddingWriter.append

    def counting_batches(self, stream):
        streams.append(stream)
        for refs, embeddings in encode_batches(self, stream):
            events.append(("batch", len(refs)))
            yield refs, embeddings

    def checked_append(self, rows):
        append(self, rows)
        self._file.flush()  # on disk now: written per batch, not gathered
        size = os.path.getsize(self.tmp)
        events.append(("written", size - 128, self.rows * self.dim * 4))

    monkeypatch.setattr(encoding_module.RunModel, "encode_batches", counting_batches)
    monkeypatch.setattr(indexing_module.EmbeddingWriter, "append", checked_append)
    index = tmp_path / "index"
    argv = ["index", str(trained_run), "--images", oracle["flat"], "--batch-size", "3"]
    assert main([*argv, "--output", str(index), "--skip-bad-records"]) == 0
    # 8 photos, batches of 3: 3 batches, each written before the next is read.
    assert [e[0] for e in events] == ["batch", "written"] * 3
    assert [e[1] for e in events if e[0] == "batch"] == [3, 3, 2]
    assert all(e[1] == e[2] for e in events if e[0] == "written")
    (stream,) = streams
    assert stream._iteration == 0  # one pass over the data
    assert stream.records_read == len(NAMES) + 1  # each file fetched once

    info = json.loads((index / "index.json").read_text())
    files = (index / "files.txt").read_text().splitlines()
    embeddings = np.load(index / "embeddings.npy", mmap_mode="r")
    assert isinstance(embeddings, np.memmap) and embeddings.dtype == np.float32
    assert info["count"] == len(files) == len(NAMES)
    assert embeddings.shape == (len(NAMES), info["embed_dim"])
    assert info["run"] == str(trained_run)
    assert info["bad_records"] == 1  # broken.jpg, skipped and counted
    assert sorted(os.path.basename(f) for f in files) == sorted(NAMES)
    want = np.stack([oracle["by_name"][os.path.basename(f)] for f in files])
    np.testing.assert_allclose(embeddings, want, atol=1e-5)

    # Text search: the oracle ranks the same files by CLIP + NumPy.
    capsys.readouterr()
    out = tmp_path / "search"
    query = "a photo of the red moon."
    argv = ["search", str(index), query, "--top-k", "5", "--output", str(out)]
    assert main(argv) == 0
    assert (out / "search.png").read_bytes()[:8] == PNG_MAGIC
    printed = [line.split() for line in capsys.readouterr().out.splitlines()[1:6]]
    results = json.loads((out / "search.json").read_text())["results"]
    scores = want @ oracle["encode"]([query])[0]
    top = np.argsort(-scores, kind="stable")[:5]
    assert_same_ranking(
        [r["file"] for r in results],
        [r["score"] for r in results],
        [files[i] for i in top],
        scores[top],
    )
    assert [p[2] for p in printed] == [r["file"] for r in results]
    assert [p[0] for p in printed] == ["1", "2", "3", "4", "5"]

    # Image search: a photo of the index finds itself first, at similarity 1.
    photo = os.path.join(oracle["flat"], "rocket.jpg")
    argv = ["search", str(index), "--image", photo, "--top-k", "3", "--no-plots"]
    assert main([*argv, "--output", str(out)]) == 0
    results = json.loads((out / "search.json").read_text())["results"]
    scores = want @ oracle["by_name"]["rocket.jpg"]
    top = np.argsort(-scores, kind="stable")[:3]
    assert results[0]["file"] == photo
    assert results[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert_same_ranking(
        [r["file"] for r in results],
        [r["score"] for r in results],
        [files[i] for i in top],
        scores[top],
    )


def test_index_of_tar_shards(trained_run, oracle, tmp_path, capsys):
    index = tmp_path / "index"
    argv = ["index", str(trained_run), "--images", oracle["tar"]]
    assert main([*argv, "--output", str(index)]) == 0
    files = (index / "files.txt").read_text().splitlines()
    embeddings = np.load(index / "embeddings.npy", mmap_mode="r")
    # `shard-0000k.tar:<i>.<ext>`: sample i of the tar is photo NAMES[i].
    names = [NAMES[int(f.rsplit(":", 1)[1].split(".")[0])] for f in files]
    assert sorted(names) == sorted(NAMES)
    want = np.stack([oracle["by_name"][n] for n in names])
    np.testing.assert_allclose(embeddings, want, atol=1e-5)
    # The contact sheet reads a result's image back from its shard.
    assert read_image_bytes(files[0]) == fx.photo_bytes(names[0])
    # The index refuses a model other than the one that built it.
    info = json.loads((index / "index.json").read_text())
    info["model_sha256"] = "0" * 64
    (index / "index.json").write_text(json.dumps(info))
    capsys.readouterr()
    assert main(["search", str(index), "a red sky", "--no-plots"]) == 2
    assert "built by another model" in capsys.readouterr().err
    info["run"] = str(tmp_path / "moved")
    (index / "index.json").write_text(json.dumps(info))
    assert main(["search", str(index), "a red sky", "--no-plots"]) == 2
    assert "name its new place with --run" in capsys.readouterr().err


def test_unreadable_image_is_a_one_line_error(trained_run, oracle, tmp_path, capsys):
    argv = ["classify", str(trained_run), "--images", oracle["flat"], "--labels", "a"]
    capsys.readouterr()
    assert main([*argv, "--output", str(tmp_path), "--no-plots"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and BROKEN in err[0] and "Traceback" not in err[0], err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["classify", "RUN", "--images", "MISSING", "--labels", "a"], "does not exist"),
        (["classify", "RUN", "--images", "EMPTY", "--labels", "a"], "holds no images"),
        (["classify", "RUN", "--images", "FLAT"], "no labels"),
        (["classify", "RUN", "--images", "TREE", "--labels", "cat"], "not one of"),
        (
            ["classify", "RUN", "--images", "FLAT", "--labels", "a", "--template", "x"],
            "exactly one '{}'",
        ),  # fmt: skip
        (["search", "INDEX", " "], "empty query"),
        (["search", "MISSING", "cat"], "does not exist"),
        (["search", "EMPTY", "cat"], "holds no index"),
        (
            ["index", "RUN", "--images", "MISSING", "--output", "INDEX"],
            "does not exist",
        ),  # fmt: skip
        (["index", "RUN", "--images", "FLAT", "--output", "INDEX"], "--overwrite"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    argv, message, trained_run, oracle, tmp_path, capsys
):
    empty = tmp_path / "empty"
    empty.mkdir()
    index = tmp_path / "index"
    index.mkdir()
    (index / "index.json").write_text("{}")
    places = {
        "RUN": str(trained_run),
        "MISSING": str(tmp_path / "missing"),
        "EMPTY": str(empty),
        "FLAT": oracle["flat"],
        "TREE": oracle["tree"],
        "INDEX": str(index),
    }
    capsys.readouterr()
    assert main([places.get(a, a) for a in argv]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and message in err[0], err
    assert "Traceback" not in err[0]


def test_top_k_over_blocks_equals_one_argsort():
    # Small integers: exact dot products in any block order, and many ties
    # (the lower row ranks first).
    rng = np.random.default_rng(0)
    embeddings = rng.integers(-3, 4, size=(1000, 8)).astype("float32")
    query = embeddings[3]
    scores = embeddings @ query
    want = np.argsort(-scores, kind="stable")[:25]
    rows, got = indexing_module.top_k(embeddings, query, 25, block=64)
    np.testing.assert_array_equal(rows, want)
    np.testing.assert_array_equal(got, scores[want])
    rows, _ = indexing_module.top_k(embeddings, query, 2000, block=64)
    np.testing.assert_array_equal(rows, np.argsort(-scores, kind="stable"))


def test_embedding_writer_appends_a_loadable_npy(tmp_path):
    path = str(tmp_path / "e.npy")
    rows = np.random.default_rng(1).normal(size=(7, 5)).astype("float32")
    writer = indexing_module.EmbeddingWriter(path)
    for batch in (rows[:3], rows[3:6], rows[6:]):
        writer.append(batch)
    assert not os.path.exists(path)  # only complete files under the real name
    writer.close()
    loaded = np.load(path, mmap_mode="r")
    assert loaded.shape == (7, 5) and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, rows)
