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
    """Run one worker process per env at once; return their RESULT dicts.

    Each process runs in its own session (process group). When one fails, or
    after `timeout` seconds, the groups still running are killed: nothing
    outlives the call and a lost peer cannot hang the test.
    """
    command = [sys.executable, "-m", "tests.distribute.tensorflow_strategy_worker"]
    procs, killed = [], set()
    with tempfile.TemporaryDirectory() as tmp:
        logs = [open(os.path.join(tmp, f"{i}.log"), "w+") for i in range(len(envs))]
        try:
            for env, log in zip(envs, logs):
                procs.append(
                    subprocess.Popen(
                        command + [mode],
                        cwd=ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                codes = [p.poll() for p in procs]
                if all(c is not None for c in codes) or any(c for c in codes):
                    break  # all done, or one failed (its peers would wait)
                time.sleep(0.2)
        finally:
            for i, p in enumerate(procs):
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
                    killed.add(i)
                p.wait()
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(log.read())
            log.close()
    failed = [i for i, p in enumerate(procs) if p.returncode and i not in killed]
    if failed or killed:
        i = failed[0] if failed else min(killed)
        why = f"ended with code {procs[i].returncode}" if failed else "timed out"
        raise AssertionError(
            f"{mode} worker {i} {why} (limit {timeout} s):\n{outputs[i][-4000:]}"
        )
    results = []
    for out in outputs:
        lines = [x for x in out.splitlines() if x.startswith("RESULT ")]
        if not lines:
            raise AssertionError(f"{mode} worker printed no RESULT:\n{out[-4000:]}")
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
