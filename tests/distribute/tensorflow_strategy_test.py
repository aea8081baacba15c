"""CLIP's global negatives inside `model.fit` under `tf.distribute` strategies.

One SGD step with 2 replicas (`MirroredStrategy` over 2 logical CPUs;
`MultiWorkerMirroredStrategy` with 2 processes on 127.0.0.1) must give the
logged loss and the updated weights of one device holding the whole global
batch, to 1e-5, for the clip and siglip losses, naive and tiled (with group
labels in two cases). The strategies run in 3 processes forked at once from one
subprocess (tensorflow_strategy_worker.py), since the device split and the
cluster must be fixed before TensorFlow starts; the single-device reference
runs here.
TensorFlow only: on the other backends the module is skipped at collection.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile

import keras
import numpy as np
import pytest

from tests.distribute import tensorflow_strategy_worker as worker

pytestmark = [
    pytest.mark.skipif(
        keras.backend.backend() != "tensorflow", reason="tf.distribute: TensorFlow only"
    ),
    pytest.mark.large,
]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 300  # seconds for a whole launch; every process is killed after it


def free_ports(count):
    """`count` distinct free TCP ports on 127.0.0.1."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def worker_env():
    # No proxy settings: gRPC would send the workers' 127.0.0.1 traffic there.
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(
        KERAS_BACKEND="tensorflow",
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="-1",
        # A tiny model: thread pools only cost CPU time (the test budget).
        TF_NUM_INTRAOP_THREADS="1",
        TF_NUM_INTEROP_THREADS="2",
        PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    env.pop("TF_CONFIG", None)
    return env


def read(path):
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        return f.read()


def launch(timeout=TIMEOUT):
    """Run the worker's 3 runs (`worker.ROLES`); return their RESULT dicts.

    The worker runs in its own session (process group) with its forked runs,
    and the whole group is killed after `timeout` seconds: nothing outlives
    the call, and a lost peer cannot hang the test.
    """
    command = [sys.executable, "-m", "tests.distribute.tensorflow_strategy_worker"]
    with tempfile.TemporaryDirectory() as tmp:
        ports = [str(port) for port in free_ports(2)]
        with open(os.path.join(tmp, "main.log"), "w+") as log:
            proc = subprocess.Popen(
                command + ["all", tmp, *ports],
                cwd=ROOT,
                env=worker_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.seek(0)
            outputs = {"main": log.read()}
        for role in worker.ROLES:
            outputs[role] = read(os.path.join(tmp, f"{role}.log"))
    results = {}
    for role in worker.ROLES:
        lines = [x for x in outputs[role].splitlines() if x.startswith("RESULT ")]
        if lines:
            results[role] = json.loads(lines[-1][len("RESULT ") :])
    if proc.returncode or len(results) < len(worker.ROLES):
        failed = [x[7:] for x in outputs["main"].splitlines() if x[:7] == "FAILED "]
        why = "failed" if failed else f"timed out ({timeout} s)"
        role = (failed or [r for r in worker.ROLES if r not in results] or ["main"])[0]
        raise AssertionError(f"the {role} run {why}:\n{outputs[role][-4000:]}")
    return results


def weight_gap(a, b):
    return max(np.abs(np.array(x) - np.array(y)).max() for x, y in zip(a, b))


@pytest.fixture(scope="module")
def reference():
    """Loss and weights of one device holding the global batch, per case.

    Run eagerly here, with no strategy: an independent path to the same step.
    """
    return [worker.one_step(*case, eager=True) for case in worker.CASES]


@pytest.fixture(scope="module")
def runs():
    return launch()


def assert_same_steps(result, reference):
    assert result["replicas"] == 2
    for case, got, want in zip(worker.CASES, result["cases"], reference, strict=True):
        np.testing.assert_allclose(
            got["loss"], want["loss"], atol=1e-5, rtol=1e-5, err_msg=str(case)
        )
        assert len(got["weights"]) == len(want["weights"]), case
        assert weight_gap(got["weights"], want["weights"]) < 1e-5, case


def test_mirrored_strategy_two_devices_equals_one_device(runs, reference):
    assert_same_steps(runs["mirrored"], reference)


def test_local_negatives_would_fail_the_check(runs, reference):
    # The same MirroredStrategy step with the all-gather switched off computes
    # each replica's loss with only its own 4 samples as negatives.
    local, want = runs["mirrored"]["local"], reference[0]
    assert abs(local["loss"] - want["loss"]) > 1.0
    assert weight_gap(local["weights"], want["weights"]) > 1e-2


def test_multi_worker_mirrored_strategy_two_processes_equals_one_device(
    runs, reference
):
    for task in (0, 1):
        result = runs[f"worker{task}"]
        assert result["task"] == task
        assert_same_steps(result, reference)
