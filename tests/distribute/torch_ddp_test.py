"""torch DDP: one `fit` step in 2 gloo processes equals one process with the batch.

`keras_mm.distribute.torch_ddp.launch` starts 2 processes once; each trains the 4
cases (CLIP / SigLIP loss x naive / tiled) on its half of the global batch under
`data_parallel`, and again with the gather turned off (local negatives). This
pytest process computes the reference: one process holding the whole batch.
Runs only in the torch pytest process.
"""

import contextlib
import os
import time
import warnings
from unittest import mock

import keras
import numpy as np
import pytest

from keras_mm.models import CLIP
from keras_mm.testing import TestCase
from tests.models import clip_test
from tests.models.model_test_utils import (
    image_encoder,
    subset,
    synthetic_task,
    text_encoder,
)

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="torch.distributed: torch only"
)

NPROCS = 2
GLOBAL_BATCH = 8
LR = 0.1
KEYS = ("images", "token_ids", "padding_mask")
# (loss, tile_size, with group labels): tile 3 leaves a remainder strip; the
# labels put one group on both processes (rows 0 and 4, rows 1 and 7).
CASES = (("clip", None, False), ("clip", 3, True), ("siglip", None, True))
CASES += (("siglip", 3, False),)
LABELS = np.array([0, 1, 2, 3, 0, 4, 5, 1], "int32")


def _clip(loss, tile_size):
    return CLIP(
        image_encoder(), text_encoder(), embed_dim=8, loss=loss, tile_size=tile_size
    )


def _fit_one_step(loss, tile_size, weights, x, y, batch_size):
    model = _clip(loss, tile_size)
    model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(LR))
    history = model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return history.history["loss"][0], model.get_weights()


def _ddp_worker(initial, x):
    """In each launched process: the 4 cases with global, then local negatives.

    Case 1 gathers with `torch.distributed.nn.functional.all_gather`, the path
    for a torch without `_functional_collectives.all_gather_single`.
    """
    from keras_mm.distribute import collectives, torch_ddp

    rank, n = torch_ddp.rank(), torch_ddp.world_size()
    rows = slice(rank * GLOBAL_BATCH // n, (rank + 1) * GLOBAL_BATCH // n)
    local_x = {k: v[rows] for k, v in x.items()}
    out = {}
    for i, ((loss, tile, labels), weights) in enumerate(zip(CASES, initial)):
        y = LABELS[rows] if labels else None
        for kind in ("global", "local"):
            if kind == "local":
                patch = mock.patch.object(collectives, "all_gather", lambda t: t)
            elif i == 1:  # the fallback for torch without functional collectives
                patch = mock.patch.object(torch_ddp, "_all_gather_single", None)
                warnings.simplefilter("ignore", FutureWarning)  # deprecated there
            else:
                patch = contextlib.nullcontext()
            with patch:
                model = _clip(loss, tile)
                model.set_weights(weights)
                model.compile(optimizer=keras.optimizers.SGD(LR))
                with torch_ddp.data_parallel(model):
                    history = model.fit(
                        local_x, y, batch_size=GLOBAL_BATCH // n, shuffle=False,
                        verbose=0,
                    )  # fmt: skip
            out[(loss, tile, kind)] = (history.history["loss"][0], model.get_weights())
    return out


def _fail_on_rank_one(pid_dir):
    from keras_mm.distribute import torch_ddp

    if torch_ddp.rank() == 1:
        raise ValueError("rank 1 fails on purpose")
    import torch.distributed as dist

    dist.barrier()  # waits for rank 1, which never comes


def _describe(*args):
    from keras_mm.distribute import torch_ddp

    return {
        "rank": torch_ddp.rank(),
        "world_size": torch_ddp.world_size(),
        "backend": keras.backend.backend(),
        "args": args,
        "env": {k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR")},
    }


def _hang(pid_dir):
    from keras_mm.distribute import torch_ddp

    with open(os.path.join(pid_dir, f"{torch_ddp.rank()}.pid"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(600)


class TorchDDPTest(TestCase):
    def test_two_gloo_processes_match_one_process_with_the_global_batch(self):
        from keras_mm.distribute import torch_ddp

        x = subset(synthetic_task(GLOBAL_BATCH, seed=5)[0], KEYS)
        initial, reference = [], {}
        for i, (loss, tile, labels) in enumerate(CASES):
            keras.utils.set_random_seed(i)
            initial.append(_clip(loss, tile).get_weights())
            y = LABELS if labels else None
            reference[(loss, tile)] = _fit_one_step(
                loss, tile, initial[-1], x, y, GLOBAL_BATCH
            )
        # fork: the children reuse this process's imports (spawn would pay ~12
        # CPU-s of Keras + TensorFlow imports per child); spawn is tested below.
        ranks = torch_ddp.launch(
            _ddp_worker, NPROCS, initial, x, timeout=240, start_method="fork"
        )
        for (loss, tile, _), start in zip(CASES, initial):
            ref_loss, ref_weights = reference[(loss, tile)]
            name = f"{loss} tile_size={tile}"
            for out in ranks:
                dist_loss, dist_weights = out[(loss, tile, "global")]
                self.assertAllClose(dist_loss, ref_loss, atol=1e-5, rtol=1e-5, msg=name)
                for a, b in zip(dist_weights, ref_weights, strict=True):
                    self.assertAllClose(a, b, atol=1e-5, rtol=1e-5, msg=name)
            # The step moved the weights (a gradient scaled by 2 would show),
            # and local negatives give another loss and update: it can fail.
            moved = max(np.abs(a - b).max() for a, b in zip(ref_weights, start))
            self.assertGreater(moved, 1e-2, name)
            local_loss, local_weights = ranks[0][(loss, tile, "local")]
            self.assertGreater(abs(local_loss - ref_loss), 1e-2, name)
            diff = max(np.abs(a - b).max() for a, b in zip(local_weights, ref_weights))
            self.assertGreater(diff, 1e-3, name)

    def test_every_trainable_variable_is_a_parameter_of_the_ddp_module(self):
        # Nested encoders whose variables share paths ("proj/kernel"): Keras
        # registers torch parameters by path, so a plain Keras model lists
        # only one of each; DDP must still average every gradient.
        import torch.distributed as dist

        from keras_mm.distribute import torch_ddp

        enc_a, enc_b = clip_test._colliding_encoders()
        a = keras.Input((16, 16, 3), name="a")
        b = keras.Input((6,), dtype="int32", name="b")
        model = keras.Model([a, b], keras.layers.Concatenate()([enc_a(a), enc_b(b)]))
        variables = {id(v.value): v.path for v in model.trainable_variables}
        listed = {id(p) for p in model.parameters()}
        self.assertTrue(set(variables) - listed)  # the pitfall is there
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        try:
            with torch_ddp.data_parallel(model) as ddp:
                registered = {id(p) for p in ddp.parameters()}
        finally:
            dist.destroy_process_group()
        missing = [path for key, path in variables.items() if key not in registered]
        self.assertEqual(missing, [])

    def test_bad_arguments_and_missing_setup_raise_value_errors(self):
        from keras_mm.distribute import torch_ddp

        with self.assertRaisesRegex(ValueError, "nprocs.*Received: nprocs=0"):
            torch_ddp.launch(_describe, 0)
        with self.assertRaisesRegex(ValueError, "timeout.*Received: timeout=-1"):
            torch_ddp.launch(_describe, 1, timeout=-1)
        env = {k: v for k, v in os.environ.items() if k not in torch_ddp.ENV_KEYS}
        with mock.patch.dict(os.environ, env, clear=True):
            with self.assertRaisesRegex(ValueError, "torchrun.*RANK"):
                torch_ddp.init_from_env()
        with self.assertRaisesRegex(ValueError, "process group"):
            with torch_ddp.data_parallel(keras.Sequential([keras.layers.Dense(1)])):
                pass

    def test_failing_child_ends_the_launch(self):
        from keras_mm.distribute import torch_ddp

        pid_dir = self.get_temp_dir()
        start = time.monotonic()
        with self.assertRaisesRegex(RuntimeError, "process 1:(.|\\n)*fails on purpose"):
            torch_ddp.launch(
                _fail_on_rank_one, 2, pid_dir, timeout=120, start_method="fork"
            )
        self.assertLess(time.monotonic() - start, 60)

    def test_hanging_children_are_killed_at_the_timeout(self):
        from keras_mm.distribute import torch_ddp

        pid_dir = self.get_temp_dir()
        start = time.monotonic()
        with self.assertRaisesRegex(TimeoutError, "timeout=3"):
            torch_ddp.launch(_hang, 2, pid_dir, timeout=3, start_method="fork")
        self.assertLess(time.monotonic() - start, 30)
        pids = [int(open(os.path.join(pid_dir, f)).read()) for f in os.listdir(pid_dir)]
        self.assertEqual(len(pids), 2)
        for pid in pids:
            with self.assertRaises(ProcessLookupError):
                os.kill(pid, 0)

    def test_spawn_runs_a_picklable_function_in_a_fresh_process(self):
        from keras_mm.distribute import torch_ddp

        [out] = torch_ddp.launch(_describe, 1, "a", {"b": 2}, timeout=120)
        self.assertEqual(out["rank"], 0)
        self.assertEqual(out["world_size"], 1)
        self.assertEqual(out["backend"], "torch")
        self.assertEqual(out["args"], ("a", {"b": 2}))
        self.assertEqual(
            out["env"], {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
        )
