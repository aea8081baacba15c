"""Bad arguments: a one-line error on stderr and a non-zero exit, no traceback."""

import json

import keras
import pytest

from keras_mm.cli import main
from keras_mm.cli.parser import requested_backend
from tests.cli.cli_helpers import TINY, stderr_lines


@pytest.fixture
def paths(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"images": [{"id": 1}]}))
    (tmp_path / "captions.txt").write_text("img.jpg#0\ta caption\n")
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "run.json").write_text("{}")
    (tmp_path / "saved").mkdir()
    config = {
        "family": "clip",
        "epochs": 2,
        "batch_size": 32,
        "seed": 0,
        "dataset": {"kind": "shapes", "image_size": 32, "sequence_length": 10},
    }
    (tmp_path / "saved" / "run.json").write_text(json.dumps(config))
    (tmp_path / "untrained").mkdir()
    (tmp_path / "untrained" / "run.json").write_text("{}")
    return tmp_path


# Paths in the argv templates start with "{d}", the fixture's directory.
def shapes(*extra, out="{d}/r"):
    return ["train", *TINY, "--output", out, *extra]


def dataset_file(name, image_root="{d}/images"):
    root = [] if image_root is None else ["--image-root", image_root]
    return ["train", "--dataset", f"{{d}}/{name}", *root, "--output", "{d}/r"]


def resume(run, *extra):
    return ["train", "--output", f"{{d}}/{run}", "--resume", *extra]


# name: (argv template, exit code, text in the message)
CASES = {
    "no command": ([], 2, "required: COMMAND"),
    "unknown command": (["fit"], 2, "invalid choice: 'fit'"),
    "train without output": (["train", "--dataset", "shapes"], 2, "required: --output"),
    "train without dataset": (["train", "--output", "{d}/r"], 2, "required: --dataset"),
    "unknown family": (shapes("--family", "dalle"), 2, "invalid choice: 'dalle'"),
    "zero epochs": (shapes("--epochs", "0"), 2, "must be >= 1"),
    "epochs not a number": (shapes("--epochs", "many"), 2, "expected an integer"),
    "negative batch size": (shapes("--batch-size", "-4"), 2, "--batch-size"),
    "negative learning rate": (shapes("--learning-rate", "-1"), 2, "finite number > 0"),
    "nan learning rate": (shapes("--learning-rate", "nan"), 2, "finite number > 0"),
    "unknown backend": (shapes("--backend", "numpy"), 2, "invalid choice: 'numpy'"),
    "missing dataset file": (dataset_file("nope.json"), 2, "does not exist"),
    "dataset file without image root": (
        dataset_file("captions.txt", image_root=None),
        2,
        "--image-root is required",
    ),
    "missing image root": (
        dataset_file("captions.txt", image_root="{d}/nope"),
        2,
        "does not exist",
    ),
    "malformed json dataset": (dataset_file("bad.json"), 1, "bad.json"),
    "unrecognised json dataset": (dataset_file("other.json"), 2, "pass --format"),
    "caption pointing at a missing image": (dataset_file("captions.txt"), 1, "img.jpg"),
    "image root with shapes": (
        shapes("--image-root", "{d}/images"),
        2,
        "applies to a dataset file",
    ),
    "resume without a run": (resume("r"), 2, "nothing to resume"),
    "resume and overwrite": (
        shapes("--resume", "--overwrite"),
        2,
        "not allowed with argument",
    ),
    "run already exists": (shapes(out="{d}/existing"), 2, "already holds a run"),
    "resume with another batch size": (
        resume("saved", "--batch-size", "64"),
        2,
        "--batch-size 64 differs from its 32",
    ),
    "resume with another dataset": (
        resume("saved", "--dataset", "{d}/captions.txt"),
        2,
        "differs from its shapes",
    ),
    "resume a run with a broken run.json": (
        resume("existing"),
        1,
        "not a keras-mm run configuration",
    ),
    "evaluate a missing run": (["evaluate", "{d}/nope"], 1, "does not exist"),
    "evaluate an untrained run": (["evaluate", "{d}/untrained"], 1, "no trained model"),
    "export a missing run": (["export", "{d}/nope"], 1, "nope"),
}


@pytest.mark.parametrize("argv, code, text", CASES.values(), ids=CASES.keys())
def test_one_line_error_and_exit_code(argv, code, text, paths, capsys):
    assert main([arg.format(d=paths) for arg in argv]) == code
    captured = capsys.readouterr()
    lines = stderr_lines(captured)
    assert len(lines) == 1, lines
    assert lines[0].startswith("keras-mm"), lines[0]
    assert text in lines[0], lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert not (paths / "r").exists() or not (paths / "r" / "run.json").exists()


def test_backend_before_the_command(capsys):
    argv = ["--backend", keras.backend.backend(), "export", "/nonexistent/run"]
    assert main(argv) == 1
    assert "does not exist" in capsys.readouterr().err


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out
    assert main(["train", "--help"]) == 0
    assert "--resume" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "--backend", "jax"], "jax"),
        (["train", "--backend=torch", "--epochs", "2"], "torch"),
        (["evaluate", "run"], None),
        (["train", "--backend"], None),
        (["--backend", "jax", "evaluate", "run"], "jax"),
    ],
)
def test_requested_backend(argv, expected):
    assert requested_backend(argv) == expected
