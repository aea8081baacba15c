"""`keras-mm train --family text-to-image`, `--resume` and `keras-mm generate`."""

import json
import os

import keras
import numpy as np

from keras_mm.cli import main
from tests.cli.cli_helpers import train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T2I = [
    "--family",
    "text-to-image",
    "--dataset",
    "shapes",
    "--image-size",
    "16",
    "--train-samples",
    "64",
    "--test-samples",
    "8",
    "--batch-size",
    "32",
    "--width",
    "16",
    "--tokenizer-epochs",
    "1",
    "--verbose",
    "0",
]


def test_train_resume_and_generate_with_clip_rerank(tmp_path, capsys):
    run, out = tmp_path / "t2i", tmp_path / "samples"
    assert main(["train", *T2I, "--epochs", "1", "--output", str(run)]) == 0
    for name in ("run.json", "tokenizer/model.keras", "transformer/checkpoint.json"):
        assert os.path.isfile(run / name), name
    tokenizer_weights = keras.saving.load_model(
        str(run / "tokenizer/model.keras")
    ).get_weights()
    # Resume: stage 1 is kept as it is, stage 2 continues from its epoch 1.
    assert main(["train", "--output", str(run), "--resume", "--epochs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "Stage 1 (image tokenizer) already trained." in printed
    assert "Resuming the transformer (stage 2) after epoch 1." in printed
    with open(run / "transformer/checkpoint.json", encoding="utf-8") as f:
        assert json.load(f)["epoch"] == 2
    model = keras.saving.load_model(str(run / "model.keras"))
    for a, b in zip(model.image_tokenizer.get_weights(), tokenizer_weights):
        np.testing.assert_array_equal(a, b)

    clip_run = tmp_path / "clip"
    assert train(clip_run, "--image-size", "16", "--epochs", "1") == 0
    prompts = ["a red circle", "a small blue ring"]
    args = ["generate", str(run), *prompts, "--num-samples", "3"]
    args += ["--output", str(out), "--rerank", str(clip_run), "--seed", "1"]
    assert main(args) == 0
    for folder in ("a_red_circle", "a_small_blue_ring"):
        names = sorted(os.listdir(out / folder))
        assert names == ["grid.png", "sample-0.png", "sample-1.png", "sample-2.png"]
        with open(out / folder / "sample-0.png", "rb") as f:
            assert f.read(8) == PNG_MAGIC
    sample = keras.utils.load_img(str(out / "a_red_circle" / "sample-0.png"))
    assert sample.size == (16, 16)
    # Bad input is one line on stderr, exit code 1, no traceback.
    assert main(["generate", str(run), "a mauve circle", "--output", str(out)]) == 1
    assert "unknown ['mauve']" in capsys.readouterr().err
    assert main(["generate", str(clip_run), "a red", "--output", str(out)]) == 1
    assert "not a TextToImage" in capsys.readouterr().err
