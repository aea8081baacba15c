"""CLIP's global negatives inside `model.fit` under `tf.distribute` strategies.

One SGD step with 2 replicas (`MirroredStrategy` over 2 logical CPUs;
`MultiWorkerMirroredStrategy` with 2 processes on 127.0.0.1) must give the
logged loss and the updated weights of one device holding the whole global
batch, to 1e-5, for the clip and siglip losses, naive and tiled (with group
labels in two cases). The strategies run in subprocesses
(tensorflow_strategy_worker.py), since the device split and the cluster must
be fixed before TensorFlow starts; the single-device reference runs here.
TensorFlow only: on the other backends the module is skipped at collection.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
import pytest

from tests.distribute import tensorflow_strategy_worker as worker

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.distribute: TensorFlow only"
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 240  # seconds for a whole launch; every process is killed after it


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


def worker_env(tf_config=None):
    env = {
        k: v for k, v in os.environ.items() if "proxy" not in k.lower()
    }  # gRPC would route 127.0.0.1 through a proxy
    env.update(
        KERAS_BACKEND="tensorflow",
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="-1",
        # A tiny model: thread pools only cost CPU time (the test budget).
        TF_NUM_INTRAOP_THREADS="1",
        TF_NUM_INTEROP_THREADS="2",
        PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def launch(mode, envs, timeout=TIMEOUT):
    """Run one worker process per env; return their RESULT dicts.

    Each process gets its own session (process group), which is killed on
    timeout, on failure and on success, so nothing outlives the test.
    """
    command = [sys.executable, "-m", "tests.distribute.tensorflow_strategy_worker"]
    with tempfile.TemporaryDirectory() as tmp:
        logs = [open(os.path.join(tmp, f"{i}.log"), "w+") for i in range(len(envs))]
        procs = [
            subprocess.Popen(
                command + [mode],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for env, log in zip(envs, logs)
        ]
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                codes = [p.poll() for p in procs]
                if all(c is not None for c in codes) or any(c for c in codes):
                    break  # all done, or one failed (the others would hang)
                time.sleep(0.2)
        finally:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(log.read())
            log.close()
    results = []
    for p, out in zip(procs, outputs):
        lines = [x for x in out.splitlines() if x.startswith("RESULT ")]
        if p.returncode or not lines:
            raise AssertionError(
                f"{mode} worker ended with code {p.returncode} (timeout {timeout} s):"
                f"\n{out[-4000:]}"
            )
        results.append(json.loads(lines[-1][len("RESULT ") :]))
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
def mirrored():
    (result,) = launch("mirrored", [worker_env()])
    return result


def assert_same_steps(result, reference):
    assert result["replicas"] == 2
    for case, got, want in zip(worker.CASES, result["cases"], reference, strict=True):
        np.testing.assert_allclose(
            got["loss"], want["loss"], atol=1e-5, rtol=1e-5, err_msg=str(case)
        )
        assert len(got["weights"]) == len(want["weights"]), case
        assert weight_gap(got["weights"], want["weights"]) < 1e-5, case


def test_mirrored_strategy_two_devices_equals_one_device(mirrored, reference):
    assert_same_steps(mirrored, reference)


def test_local_negatives_would_fail_the_check(mirrored, reference):
    # The same MirroredStrategy step with the all-gather switched off computes
    # each replica's loss with only its own 4 samples as negatives.
    local, want = mirrored["local"], reference[0]
    assert abs(local["loss"] - want["loss"]) > 1.0
    assert weight_gap(local["weights"], want["weights"]) > 1e-2


def test_multi_worker_mirrored_strategy_two_processes_equals_one_device(reference):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    envs = [
        worker_env({"cluster": cluster, "task": {"type": "worker", "index": i}})
        for i in range(2)
    ]
    results = launch("multiworker", envs)
    assert [r["task"] for r in results] == [0, 1]
    for result in results:
        assert_same_steps(result, reference)
