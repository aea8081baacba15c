"""Global negatives under data parallelism: one step equals one device.

Each check runs `global_negatives_worker.py` in a fresh process, because JAX's
forced host device count must be fixed before the backend starts. A check runs
only in the JAX pytest process (CI runs pytest once per backend). TensorFlow's
strategies are checked through `CLIP.fit` in tests/distribute.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_mm.testing import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_worker(backend, kind, tile):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if backend == "jax":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    out = subprocess.run(
        [sys.executable, "-m", "tests.losses.global_negatives_worker"]
        + [backend, kind, str(tile).lower()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode or not lines:
        raise AssertionError(
            f"worker failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.large
class GlobalNegativesTest(TestCase):
    def check(self, backend, kind, tile, devices):
        if keras.backend.backend() != backend:
            self.skipTest(f"runs in the {backend} pytest process")
        result = run_worker(backend, kind, tile)
        self.assertEqual(result["devices"], devices)
        single, dist = result["single"], result["dist"]
        self.assertAllClose(dist[0], single[0], atol=1e-5, rtol=1e-5)
        self.assertEqual(len(dist[1]), len(single[1]))
        for a, b in zip(dist[1], single[1]):
            self.assertAllClose(np.array(a), np.array(b), atol=1e-5, rtol=1e-5)
        # The step moved the weights, and per-device (local) negatives would
        # give a visibly different loss: the check can tell the two apart.
        self.assertGreater(abs(result["local"] - single[0]), 1e-2)
        return result

    def test_jax_data_parallel_clip_tiled(self):
        result = self.check("jax", "clip", 8, devices=4)
        self.assertEqual(result["dist"][2], 4)  # weights replicated on 4 devices

    def test_jax_data_parallel_siglip_naive(self):
        self.check("jax", "siglip", None, devices=4)
