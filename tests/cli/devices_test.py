"""`keras-mm train --devices N` and the multi-process options.

`--devices 2` gives, after one epoch (4 steps), the weights of `--devices 1`
with the same seed and global batch, to 1e-4, on every backend: the devices
are TensorFlow logical CPU devices (`MirroredStrategy`), JAX host devices
(`DataParallel`) or 2 torch processes (`DistributedDataParallel`). The call is
made in this process: on JAX and TensorFlow, whose devices are fixed once the
backend has started, the command runs again in a fresh interpreter; on torch it
starts 2 processes (forked here, to reuse this process's imports).
"""

import argparse
import json
import os
import re

import keras
import numpy as np
import pytest

from keras_mm.cli import distributed, main
from keras_mm.cli.parser import UsageError
from tests.cli.cli_helpers import TINY, stderr_lines

ONE_EPOCH = [*TINY, "--epochs", "1"]
BACKEND = keras.backend.backend()


def _weights(path):
    model = keras.saving.load_model(str(path), compile=False)
    return {v.path: np.asarray(v) for v in model.weights}


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    run = tmp_path_factory.mktemp("devices") / "one"
    assert main(["train", *ONE_EPOCH, "--output", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory):
    run = tmp_path_factory.mktemp("devices") / "two"
    env = {distributed.START_METHOD_ENV: "fork", distributed.LAUNCH_TIMEOUT_ENV: "300"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        code = main(["train", *ONE_EPOCH, "--devices", "2", "--output", str(run)])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return run, code


def test_two_devices_give_the_weights_of_one(one_device, two_devices):
    run, code = two_devices
    assert code == 0
    with open(run / "run.json") as f:
        config = json.load(f)
    assert config["devices"] == 2 and config["batch_size"] == 32
    assert config["device_batch_size"] == 16
    assert config["processes"] == (2 if BACKEND == "torch" else 1)
    assert "2 devices" in config["parallelism"]
    engine = {"tensorflow": "MirroredStrategy", "jax": "DataParallel"}
    assert engine.get(BACKEND, "DistributedDataParallel") in config["parallelism"]
    one, two = _weights(one_device / "model.keras"), _weights(run / "model.keras")
    assert list(one) == list(two)
    for path in one:
        np.testing.assert_allclose(two[path], one[path], atol=1e-4, err_msg=path)
    # One set of run files: process 0 alone wrote them.
    assert sorted(os.listdir(run / "checkpoints")) == ["epoch-0001.keras"]


def test_resume_with_another_device_count_is_refused(two_devices, capsys):
    run, _ = two_devices
    code = main(["train", "--output", str(run), "--resume", "--devices", "1"])
    assert code == 2
    (line,) = stderr_lines(capsys.readouterr())
    assert "trained on 2 device(s)" in line and "--devices 2" in line


def test_global_batch_must_split_over_the_devices(tmp_path, capsys):
    args = [*TINY, "--batch-size", "30", "--devices", "4"]
    assert main(["train", *args, "--output", str(tmp_path / "run")]) == 2
    (line,) = stderr_lines(capsys.readouterr())
    assert "--batch-size 30 (the global batch) must be a multiple of the 4" in line
    assert not os.path.exists(tmp_path / "run")


# -------------------------------------------------------------- the plan
def _args(**given):
    names = ("devices", "num_processes", "process_id", "coordinator", "family")
    values = {name: None for name in (*names, "batch_size")}
    values.update(resume=False, output="unused", **given)
    return argparse.Namespace(**values)


def test_plan_from_flags_and_environments(monkeypatch):
    for name in ("TF_CONFIG", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    plan = distributed.plan(
        _args(devices=2, num_processes=2, process_id=1, coordinator="10.0.0.1:99"),
        "jax",
    )
    assert (plan.total_devices, plan.processes, plan.chief) == (4, 2, False)
    # torch: --devices N starts N processes of one device each.
    plan = distributed.plan(_args(devices=2), "torch")
    assert (plan.launch, plan.processes, plan.devices) == (2, 2, 1)
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"index": 1}}),
    )
    plan = distributed.plan(_args(), "tensorflow")
    assert (plan.processes, plan.process_id, plan.source) == (2, 1, "TF_CONFIG")
    env = {"RANK": "0", "WORLD_SIZE": "3", "MASTER_ADDR": "h", "MASTER_PORT": "7"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    plan = distributed.plan(_args(batch_size=48), "torch")
    assert (plan.processes, plan.coordinator, plan.source) == (3, "h:7", "torchrun")


@pytest.mark.parametrize(
    "given, message",
    [
        (dict(num_processes=2), "needs --process-id and --coordinator"),
        (dict(num_processes=2, process_id=2, coordinator="h:1"), "in [0, 2)"),
        (dict(num_processes=2, process_id=0, coordinator="h"), "HOST:PORT"),
        (dict(devices=3), "must be a multiple of the 3 devices"),
        (dict(devices=2, family="text-to-image"), "--family clip only"),
    ],
)
def test_plan_refuses_bad_settings(given, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        distributed.plan(_args(**given), "jax")
