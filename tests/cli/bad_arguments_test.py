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


def shapes(out, *extra):
    return ["train", *TINY, "--output", str(out), *extra]


# (argv built from the fixture's directory, exit code, text in the message)
CASES = {
    "no command": (lambda d: [], 2, "required: COMMAND"),
    "unknown command": (lambda d: ["fit"], 2, "invalid choice: 'fit'"),
    "train without output": (
        lambda d: ["train", "--dataset", "shapes"],
        2,
        "required: --output",
    ),
    "train without dataset": (
        lambda d: ["train", "--output", str(d / "r")],
        2,
        "required: --dataset",
    ),
    "unknown family": (
        lambda d: shapes(d / "r", "--family", "dalle"),
        2,
        "invalid choice: 'dalle'",
    ),
    "zero epochs": (lambda d: shapes(d / "r", "--epochs", "0"), 2, "must be >= 1"),
    "epochs not a number": (
        lambda d: shapes(d / "r", "--epochs", "many"),
        2,
        "expected an integer",
    ),
    "negative batch size": (
        lambda d: shapes(d / "r", "--batch-size", "-4"),
        2,
        "--batch-size",
    ),
    "negative learning rate": (
        lambda d: shapes(d / "r", "--learning-rate", "-1"),
        2,
        "finite number > 0",
    ),
    "nan learning rate": (
        lambda d: shapes(d / "r", "--learning-rate", "nan"),
        2,
        "finite number > 0",
    ),
    "unknown backend": (
        lambda d: shapes(d / "r", "--backend", "numpy"),
        2,
        "invalid choice: 'numpy'",
    ),
    "missing dataset file": (
        lambda d: (
            ["train", "--dataset", str(d / "nope.json")]
            + ["--image-root", str(d / "images"), "--output", str(d / "r")]
        ),
        2,
        "does not exist",
    ),
    "dataset file without image root": (
        lambda d: (
            ["train", "--dataset", str(d / "captions.txt")] + ["--output", str(d / "r")]
        ),
        2,
        "--image-root is required",
    ),
    "missing image root": (
        lambda d: (
            ["train", "--dataset", str(d / "captions.txt")]
            + ["--image-root", str(d / "nope"), "--output", str(d / "r")]
        ),
        2,
        "does not exist",
    ),
    "malformed json dataset": (
        lambda d: (
            ["train", "--dataset", str(d / "bad.json")]
            + ["--image-root", str(d / "images"), "--output", str(d / "r")]
        ),
        1,
        "bad.json",
    ),
    "unrecognised json dataset": (
        lambda d: (
            ["train", "--dataset", str(d / "other.json")]
            + ["--image-root", str(d / "images"), "--output", str(d / "r")]
        ),
        2,
        "pass --format",
    ),
    "caption pointing at a missing image": (
        lambda d: (
            ["train", "--dataset", str(d / "captions.txt")]
            + ["--image-root", str(d / "images"), "--output", str(d / "r")]
        ),
        1,
        "img.jpg",
    ),
    "image root with shapes": (
        lambda d: shapes(d / "r", "--image-root", str(d / "images")),
        2,
        "applies to a dataset file",
    ),
    "resume without a run": (
        lambda d: ["train", "--output", str(d / "r"), "--resume"],
        2,
        "nothing to resume",
    ),
    "resume and overwrite": (
        lambda d: shapes(d / "r", "--resume", "--overwrite"),
        2,
        "not allowed with argument",
    ),
    "run already exists": (
        lambda d: shapes(d / "existing"),
        2,
        "already holds a run",
    ),
    "resume with another batch size": (
        lambda d: (
            ["train", "--output", str(d / "saved"), "--resume"] + ["--batch-size", "64"]
        ),
        2,
        "--batch-size 64 differs from its 32",
    ),
    "resume with another dataset": (
        lambda d: (
            ["train", "--output", str(d / "saved"), "--resume"]
            + ["--dataset", str(d / "captions.txt")]
        ),
        2,
        "differs from its shapes",
    ),
    "resume a run with a broken run.json": (
        lambda d: ["train", "--output", str(d / "existing"), "--resume"],
        1,
        "not a keras-mm run configuration",
    ),
    "evaluate a missing run": (
        lambda d: ["evaluate", str(d / "nope")],
        1,
        "does not exist",
    ),
    "evaluate an untrained run": (
        lambda d: ["evaluate", str(d / "untrained")],
        1,
        "no trained model",
    ),
    "export a missing run": (lambda d: ["export", str(d / "nope")], 1, "nope"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_line_error_and_exit_code(case, paths, capsys):
    make_argv, code, text = CASES[case]
    assert main(make_argv(paths)) == code
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
