"""Long-run guarantees of `keras-mm train` (issue 9, item 4), on each backend.

- A run killed with SIGKILL mid-epoch keeps the previous epoch's checkpoint, and
  `--resume` ends with the same weights as an uninterrupted run. The two runs
  are separate processes, so this also shows that the same seed on the same
  backend gives bit-identical weights.
- A NaN loss stops training with a one-line message and leaves the last good
  checkpoint untouched; `--resume --learning-rate` continues from it.
- Ctrl-C (SIGINT) stops training after the current step on every backend,
  with the last epoch's checkpoint committed, the resume hint and exit code 130.
"""

import json
import os
import signal
import subprocess
import time

import keras
import numpy as np

from keras_mm.cli import main
from keras_mm.cli.training import KILL_ENV
from tests.cli.cli_helpers import (
    OTHER_BACKEND,
    TINY,
    assert_same_weights,
    checkpoint_state,
    console_env,
    console_script,
    native_log_lines,
    run_console,
    stderr_lines,
    train,
    weights_of,
)


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, capsys):
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert train(full, "--epochs", "3") == 0

    # The real console script, killed after batch 2 of epoch 2 (of 4 batches).
    args = ["train", *TINY, "--epochs", "3", "--output", str(killed)]
    result = run_console(args, env={KILL_ENV: "2:2"})
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert checkpoint_state(killed)["epoch"] == 1
    assert os.listdir(killed / "checkpoints") == ["epoch-0001.keras"]
    assert not (killed / "model.keras").exists()
    after_epoch_1 = weights_of(killed / "checkpoints" / "epoch-0001.keras")

    capsys.readouterr()
    assert main(["train", "--output", str(killed), "--resume"]) == 0
    assert "Resuming after epoch 1 of 3" in capsys.readouterr().out
    final = weights_of(killed / "model.keras")
    assert_same_weights(weights_of(full / "model.keras"), final)
    # Epochs 2 and 3 did train: the comparison is not between untouched weights.
    assert any(not np.array_equal(a, b) for a, b in zip(after_epoch_1, final))
    losses = [
        [h["loss"] for h in checkpoint_state(r)["history"]] for r in (full, killed)
    ]
    assert losses[0] == losses[1] and len(losses[0]) == 3


def test_nan_stop_keeps_last_good_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, "--epochs", "1") == 0
    good = weights_of(run / "checkpoints" / "epoch-0001.keras")
    capsys.readouterr()
    # As if trained on another backend: resuming records the one it runs on.
    config = json.loads((run / "run.json").read_text())
    config["backend"] = OTHER_BACKEND[keras.backend.backend()]
    (run / "run.json").write_text(json.dumps(config))

    code = main(
        ["train", "--output", str(run), "--resume", "--epochs", "3"]
        + ["--learning-rate", "1e10"]
    )
    assert code == 3
    lines = stderr_lines(capsys.readouterr())
    assert len(lines) == 1, lines
    assert lines[0].startswith("keras-mm train: error: the loss became NaN")
    assert "at epoch 2" in lines[0]
    assert "last good checkpoint (epoch 1)" in lines[0]
    assert "Traceback" not in lines[0]
    # The good checkpoint is untouched and still the committed one.
    assert checkpoint_state(run)["epoch"] == 1
    assert os.listdir(run / "checkpoints") == ["epoch-0001.keras"]
    kept = weights_of(run / "checkpoints" / "epoch-0001.keras")
    assert_same_weights(good, kept)
    assert all(np.isfinite(w).all() for w in kept)

    # And training continues from it with a sane learning rate.
    code = main(
        ["train", "--output", str(run), "--resume", "--epochs", "2"]
        + ["--learning-rate", "1e-3"]
    )
    assert code == 0
    assert checkpoint_state(run)["epoch"] == 2
    config = json.loads((run / "run.json").read_text())
    assert config["backend"] == keras.backend.backend()  # issue 21, item 12
    assert all(np.isfinite(w).all() for w in weights_of(run / "model.keras"))


def test_nan_in_first_epoch_writes_no_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, "--epochs", "2", "--learning-rate", "1e10") == 3
    lines = stderr_lines(capsys.readouterr())
    assert len(lines) == 1 and "no checkpoint was written" in lines[0]
    assert not (run / "checkpoint.json").exists()
    assert not (run / "model.keras").exists()


def test_ctrl_c_stops_after_the_step_with_a_checkpoint(tmp_path):
    """Issue 21, item 2 (JAX ignored Ctrl-C), and issue 19: no C++ log lines."""
    run = tmp_path / "run"
    args = ["train", *TINY, "--epochs", "100", "--output", str(run)]
    env = console_env({"TF_CPP_MIN_LOG_LEVEL": None})  # the CLI quiets TF itself
    process = subprocess.Popen(
        [console_script(), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 240
        while not (run / "checkpoint.json").exists():
            assert process.poll() is None and time.time() < deadline
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("keras-mm train: error: interrupted (Ctrl-C)")
    assert f"keras-mm train --output {run} --resume" in lines[-1]
    epoch = checkpoint_state(run)["epoch"]
    assert 1 <= epoch < 100 and f"epoch {epoch} is committed" in lines[-1]
    assert os.listdir(run / "checkpoints") == [f"epoch-{epoch:04d}.keras"]
    assert not (run / "model.keras").exists()
    assert native_log_lines(out + err) == []
