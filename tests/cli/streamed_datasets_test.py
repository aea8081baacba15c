"""`keras-mm train/evaluate --dataset` on streamed formats."""

import json
import os
import tarfile

import pytest

from keras_mm.cli import main
from keras_mm.cli.streaming import stream_format
from tests.data import stream_fixtures as fx

TINY = [
    "--epochs", "1", "--batch-size", "4", "--width", "8", "--embed-dim", "8",
    "--image-size", "16", "--sequence-length", "6", "--verbose", "0",
    "--test-fraction", "0.3",
]  # fmt: skip


def metrics_of(run):
    with open(os.path.join(run, "metrics.json")) as f:
        return json.load(f)


def test_formats_are_detected_from_the_path(tmp_path):
    csv_path = fx.write_csv(str(tmp_path / "csv"), fx.pick(2, 0))
    assert stream_format(csv_path, None) == "csv"
    assert stream_format(str(tmp_path / "csv" / "img"), None) == "folder"
    assert stream_format(str(tmp_path / "s-{000..003}.tar"), None) == "tar"
    assert stream_format(str(tmp_path / "missing.csv"), None) is None
    assert stream_format(csv_path, "coco") is None  # the in-memory readers


def test_train_and_evaluate_stream_tar_shards(tmp_path, capsys):
    """Tar shards with one broken sample: named by default, skipped on request."""
    names = fx.pick(14, 0)
    pattern = fx.write_tar(str(tmp_path / "tar"), names, num_shards=2)
    with tarfile.open(str(tmp_path / "tar" / "shard-00001.tar"), "a") as tar:
        fx.add_member(tar, "broken.jpg", b"not an image")
        fx.add_member(tar, "broken.txt", b"a photo of the sky.")
    run = str(tmp_path / "run")
    args = ["train", "--dataset", pattern, "--output", run, *TINY]
    assert main(args) == 1
    assert "broken.jpg: corrupt or unsupported image" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--skip-bad-records"]) == 0
    out = capsys.readouterr().out
    assert "streaming tar" in out and "skipped 1 bad records" in out
    with open(os.path.join(run, "run.json")) as f:
        assert json.load(f)["dataset"]["kind"] == "stream"
    assert main(["evaluate", run]) == 0
    metrics = metrics_of(run)
    assert 0 < metrics["test_images"] < 14 and "image_to_text_r1" in metrics


@pytest.mark.filterwarnings("error:Your input ran out of data")
def test_data_smaller_than_a_batch_is_a_clear_error(tmp_path, capsys):
    """Not an epoch of no steps that "trains" to a NaN loss and a checkpoint."""
    csv = fx.write_csv(str(tmp_path), fx.pick(4, 0))
    run = str(tmp_path / "run")
    assert main(["train", "--dataset", csv, "--output", run, *TINY]) == 2
    err = capsys.readouterr().err
    assert "epoch 1 ran no training step" in err and "--batch-size 4" in err, err
    assert not os.path.exists(os.path.join(run, "checkpoint.json"))
