"""JAX data parallelism: one `fit` step on 2 devices or 2 processes equals one device.

Both checks start fresh interpreters (`jax_multiprocess_worker.py`), because
the device count and the multi-process job are fixed before JAX's first
computation: one process with 2 host devices
(`--xla_force_host_platform_device_count=2`), and 2 processes of one job
(`keras.distribution.initialize` on a free 127.0.0.1 port, gloo collectives)
that each feed their own half of the global batch. Each launch trains the 4
cases (CLIP / SigLIP x naive / tiled); this pytest process computes the
reference, one device holding the global batch. Runs in the JAX pytest
process only.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_mm.testing import TestCase
from tests.distribute import jax_multiprocess_worker as worker

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="JAX data parallelism: JAX only"
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 240  # seconds for a whole launch; then every process is killed


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_processes(commands, env, timeout=TIMEOUT):
    """Run `commands` at once; kill them all at the first failure or at `timeout`.

    Each runs in its own session (process group), so a kill also ends its
    children. Returns the outputs; raises AssertionError with their tails.
    """
    procs = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        for command in commands
    ]
    deadline = time.monotonic() + timeout
    failed = None
    try:
        while failed is None:
            codes = [p.poll() for p in procs]
            if any(codes):  # not None, not 0
                failed = f"a process failed (exit codes {codes})"
            elif all(c == 0 for c in codes):
                break
            elif time.monotonic() > deadline:
                failed = f"timed out after {timeout} s"
            else:
                time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        outputs = [p.communicate()[0] for p in procs]
    if failed:
        tails = "\n".join(
            f"--- process {i}:\n{o[-3000:]}" for i, o in enumerate(outputs)
        )
        raise AssertionError(f"{failed}\n{tails}")
    return outputs


def worker_env(devices):
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    flags.append(f"--xla_force_host_platform_device_count={devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    return env


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Per case: initial weights, local-negatives loss, one-device step."""
    out = tmp_path_factory.mktemp("jax_dp")
    cases = [worker.reference(i) for i in range(len(worker.CASES))]
    worker.save_initial(str(out), [initial for initial, _, _ in cases])
    return str(out), cases


class JaxDataParallelTest(TestCase):
    @pytest.fixture(autouse=True)
    def _references(self, references):
        self.out, self.cases = references

    def check(self, mode, processes):
        for p in range(processes):
            with open(os.path.join(self.out, f"{mode}-{p}.json")) as f:
                result = json.load(f)
            self.assertEqual(result["processes"], processes)
            for (initial, local, single), case, spec in zip(
                self.cases, result["cases"], worker.CASES, strict=True
            ):
                name = f"{mode} process {p}: {spec}"
                self.assertEqual(case["placed"], 2, name)  # weights on 2 devices
                loss, weights = case["dist"]
                self.assertAllClose(loss, single[0], atol=1e-5, rtol=1e-5, msg=name)
                for a, b in zip(weights, single[1], strict=True):
                    self.assertAllClose(
                        np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5, msg=name
                    )
                # The step moved the weights (a gradient scaled by 2 would
                # show), and per-device negatives give another loss: the check
                # can fail.
                moved = max(
                    np.abs(np.asarray(a) - b).max() for a, b in zip(single[1], initial)
                )
                self.assertGreater(moved, 1e-2, name)
                self.assertGreater(abs(local - single[0]), 1e-2, name)

    def test_two_host_devices_match_one_device(self):
        command = [sys.executable, "-m", worker.__name__, self.out, "devices"]
        run_processes([command], worker_env(2))
        self.check("devices", 1)

    def test_two_processes_match_one_device(self):
        address = f"127.0.0.1:{free_port()}"
        commands = [
            [sys.executable, "-m", worker.__name__, self.out, "processes"]
            + [address, "2", str(p)]
            for p in range(2)
        ]
        run_processes(commands, worker_env(1))
        self.check("processes", 2)

    def test_a_failing_process_ends_the_launch(self):
        # Process 1 never starts: process 0 would wait for it in
        # `initialize`; the launch kills it at its own timeout.
        address = f"127.0.0.1:{free_port()}"
        command = [sys.executable, "-m", worker.__name__, self.out, "processes"]
        started = time.monotonic()
        with self.assertRaisesRegex(AssertionError, "failed|timed out"):
            run_processes(
                [
                    command + [address, "2", "0"],
                    [sys.executable, "-c", "raise SystemExit(3)"],
                ],
                worker_env(1),
            )
        self.assertLess(time.monotonic() - started, 60)
