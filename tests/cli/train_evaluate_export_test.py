"""`keras-mm train` + `evaluate` + `export` on tiny settings (run per backend)."""

import json
import os

import keras
import numpy as np
import pytest

from keras_mm.cli import main
from keras_mm.metrics import retrieval_metrics, zero_shot_accuracy
from tests.cli.cli_helpers import (
    OTHER_BACKEND,
    assert_same_weights,
    checkpoint_state,
    native_log_lines,
    run_console,
    stderr_lines,
    weights_of,
)
from tests.export.saved_model_checks import serve_without_keras

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_train_writes_checkpoint_and_model(trained_run):
    for name in ("run.json", "vocabulary.json", "checkpoint.json", "model.keras"):
        assert (trained_run / name).is_file(), name
    state = checkpoint_state(trained_run)
    assert state["epoch"] == 2
    assert os.listdir(trained_run / "checkpoints") == ["epoch-0002.keras"]
    assert [h["epoch"] for h in state["history"]] == [1, 2]
    assert all(np.isfinite(h["loss"]) for h in state["history"])
    assert set(state["rng"]) == {"python", "numpy", "keras"}
    config = json.loads((trained_run / "run.json").read_text())
    assert config["family"] == "clip" and config["epochs"] == 2
    assert config["backend"] == keras.backend.backend()
    # The final model is the last checkpoint's weights.
    assert_same_weights(
        weights_of(trained_run / "model.keras"),
        weights_of(trained_run / "checkpoints" / "epoch-0002.keras"),
    )


def test_evaluate_prints_table_and_writes_plots(trained_run, capsys):
    argv = ["evaluate", str(trained_run), "--fail-under", "zero_shot_top5=0.0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = [
        "zero-shot top-1 (24 classes)",
        "zero-shot top-5",
        "zero-shot top-1, held-out combos",
        "image->text R@1, same class",
        "text->image R@10, same class",
        "image->text R@1, own caption *",
        "text->image R@5, own caption *",
        "* own caption:",
    ]
    # In this order: the class-level recall, what captions that repeat per
    # class can measure, before the instance-level one and its footnote.
    positions = [out.find(row) for row in rows]
    assert -1 not in positions and positions == sorted(positions), positions
    metrics = json.loads((trained_run / "metrics.json").read_text())
    for key in ("zero_shot_top1", "image_to_text_r1", "text_to_image_r10"):
        assert 0.0 <= metrics[key] <= 1.0
    assert f"{metrics['zero_shot_top1']:.1%}" in out
    for name in ("similarity.png", "embeddings.png"):
        data = (trained_run / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 2000, name

    # The numbers are the metrics of the saved model on the test split.
    from keras_mm.cli.data import load_dataset

    config = json.loads((trained_run / "run.json").read_text())
    data = load_dataset(config["dataset"])
    model = keras.saving.load_model(str(trained_run / "model.keras"), compile=False)
    test = data["test"]
    images = model.encode_image(test["images"])
    texts = model.encode_text({k: test[k] for k in ("token_ids", "padding_mask")})
    weights = model.build_zero_shot_weights(data["class_prompts"])
    zs = zero_shot_accuracy(images @ weights.T, test["labels"], ks=(1,))
    ret = retrieval_metrics(images @ texts.T, ks=(1,))
    assert metrics["zero_shot_top1"] == pytest.approx(zs["top1"])
    assert metrics["image_to_text_r1"] == pytest.approx(ret["image_to_text_r1"])
    # The footnote's chance level: 1 / (test captions of the image's class).
    counts = np.bincount(test["labels"], minlength=24)
    chance = np.mean(1.0 / counts[test["labels"]])
    assert metrics["image_to_text_r1_chance"] == pytest.approx(chance)
    assert f"R@1 {chance:.1%} (image->text)" in " ".join(out.split())


def test_evaluate_fail_under(trained_run, capsys):
    argv = ["evaluate", str(trained_run), "--no-plots"]
    assert main(argv + ["--fail-under", "zero_shot_top1=1.01"]) == 1
    lines = stderr_lines(capsys.readouterr())
    assert len(lines) == 1
    assert "below the required minimum: zero_shot_top1 = " in lines[0]


def test_export_serves_without_keras(trained_run, tmp_path, capsys):
    assert main(["export", str(trained_run)]) == 0
    saved_model = trained_run / "saved_model"
    assert (saved_model / "saved_model.pb").is_file()
    assert "encode_image, encode_text" in capsys.readouterr().out
    model = keras.saving.load_model(str(trained_run / "model.keras"), compile=False)
    images = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 3)).astype("float32")
    served = serve_without_keras(
        str(saved_model), {"encode_image": {"images": images}}, str(tmp_path)
    )
    np.testing.assert_allclose(
        served["encode_image"]["image_embeddings"],
        model.encode_image(images),
        atol=1e-5,
    )
    # A second export does not silently replace the first.
    assert main(["export", str(trained_run)]) == 2
    lines = stderr_lines(capsys.readouterr())
    assert len(lines) == 1 and "--overwrite" in lines[0]


def test_export_to_an_unwritable_place_is_one_line(trained_run, tmp_path, capsys):
    """Issue 21, item 10: no TensorFlow traceback."""
    (tmp_path / "file").write_text("")
    output = tmp_path / "file" / "saved_model"  # under a file: cannot be created
    assert main(["export", str(trained_run), "--output", str(output)]) == 1
    captured = capsys.readouterr()
    lines = stderr_lines(captured)
    assert len(lines) == 1, lines
    assert lines[0] == (
        f"keras-mm export: error: cannot write the SavedModel to {str(output)!r}: "
        "Not a directory"
    )


# The re-execution does not depend on the backend it starts from: once per CI.
@pytest.mark.every_backend
def test_backend_option_reexecutes_under_that_backend(capfd):
    other = OTHER_BACKEND[keras.backend.backend()]
    # The installed script, started under this backend: `--backend` replaces
    # the process with one where KERAS_BACKEND is the other backend.
    # Without TF_CPP_MIN_LOG_LEVEL: the CLI keeps TensorFlow's C++ start-up
    # lines out of its output itself (issue 19).
    env = {"TF_CPP_MIN_LOG_LEVEL": None}
    result = run_console(["--version", "--backend", other], env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"backend {other})" in result.stdout
    assert native_log_lines(result.stdout + result.stderr) == []
    # In-process: the command runs in a subprocess whose exit code is returned.
    assert main(["--backend", other, "--version"]) == 0
    assert f"backend {other})" in capfd.readouterr().out
