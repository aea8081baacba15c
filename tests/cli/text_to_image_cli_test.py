"""`keras-mm train --family text-to-image`, `--resume` and `keras-mm generate`."""

import json
import os

import keras
import numpy as np

from keras_mm.cli import main
from keras_mm.cli.text_to_image import DEFAULT_GUIDANCE_SCALE, DEFAULT_TOP_P
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


def run_config(run):
    with open(run / "run.json", encoding="utf-8") as f:
        return json.load(f)


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
    # Without --rerank, the samples are the model's own with the run's
    # default guidance and top-p (it was trained with prompt dropout).
    assert (
        model.prompt_dropout > 0 and run_config(run)["dataset"]["train_samples"] == 64
    )
    args = ["generate", str(run), "a red circle", "--num-samples", "2", "--seed", "3"]
    assert main([*args, "--output", str(out / "plain")]) == 0
    expected = model.generate(
        ["a red circle"],
        num_samples=2,
        seed=3,
        guidance_scale=DEFAULT_GUIDANCE_SCALE,
        top_p=DEFAULT_TOP_P,
    )
    for i, image in enumerate(expected):
        png = keras.utils.load_img(
            str(out / "plain" / "a_red_circle" / f"sample-{i}.png")
        )
        np.testing.assert_array_equal(np.asarray(png), np.round(image * 255))
    # Bad input is one line on stderr, exit code 1, no traceback.
    assert main(["generate", str(run), "a mauve circle", "--output", str(out)]) == 1
    assert "unknown ['mauve']" in capsys.readouterr().err
    assert main(["generate", str(clip_run), "a red", "--output", str(out)]) == 1
    assert "not a TextToImage" in capsys.readouterr().err


def test_family_defaults_are_the_measured_settings(tmp_path):
    """The defaults benchmarks/RESULTS.md measured (quality and time)."""
    from keras_mm.cli.checkpoints import RunDir
    from keras_mm.cli.parser import make_parser
    from keras_mm.cli.run_config import resolve_config

    argv = ["train", "--family", "text-to-image", "--dataset", "shapes"]
    args = make_parser().parse_args([*argv, "--output", str(tmp_path / "run")])
    config, _ = resolve_config(args, RunDir(str(tmp_path / "run")))
    assert config["dataset"]["train_samples"] == 8000
    assert (config["tokenizer_epochs"], config["epochs"], config["width"]) == (
        12,
        12,
        128,
    )
    assert config["learning_rate"] == 2e-3
