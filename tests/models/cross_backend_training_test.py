"""A `.keras` file saved under any backend loads and trains on under this one.

Every model family (`cross_backend_saver.FAMILIES`), compiled with `Adam` and
saved under each of the two other backends, is loaded here with its compile
config and must:

- give the saving backend's `predict` outputs on the saved batch (1e-5);
- come back with the public `keras.optimizers.Adam` (a torch file used to
  rebuild the torch backend's own Adam under JAX/TensorFlow, and `fit` failed
  with `TypeError: expected Tensor as element 0 ...`); the file names it by its
  public module;
- come back with its optimizer state: the same variables (by name and order)
  holding the saved iterations and moments;
- resolve `jit_compile` as `"auto"` does here (a JAX file's `True` ran
  torch.compile under torch);
- train one `fit` step (every family, on the batch the saver wrote) that moves
  the weights and counts on from the saved iterations; a distiller's teacher
  stays frozen (TensorFlow used to make a loaded teacher trainable again).

Design for CI time: the files are written by `cross_backend_saver` in one
subprocess per other backend, both at once, once per pytest process (a
module fixture); over the three CI runs every backend saves for and loads from
every other. `make test` gives the three runs one folder,
`KERAS_MM_TEST_SHARED_DIR`, where each backend's files are written once and
then loaded by the two other runs (three saver runs per CI instead of six).
Files are generated rather than committed: the test then covers today's saving
code on every backend, and the repository keeps no binary fixtures (about 5 MB
per backend with the optimizer state). The savers set the optimizer state
directly instead of training, so only the loading side runs a train step.
"""

import json
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

from tests.models.cross_backend_saver import FAMILIES, ITERATIONS
from tests.models.model_test_utils import BACKENDS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{backend: (folder, saved.json)} for the two other backends."""
    running, out = {}, {}
    shared = os.environ.get("KERAS_MM_TEST_SHARED_DIR")
    for backend in BACKENDS:
        if backend == keras.backend.backend():
            continue
        if shared:
            folder = os.path.join(shared, f"saved_under_{backend}")
            if os.path.exists(os.path.join(folder, "saved.json")):
                with open(os.path.join(folder, "saved.json")) as f:
                    out[backend] = folder, json.load(f)
                continue
            os.makedirs(folder, exist_ok=True)
        else:
            folder = str(tmp_path_factory.mktemp(f"saved_under_{backend}"))
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env["OMP_NUM_THREADS"] = "1"
        running[backend] = (
            folder,
            subprocess.Popen(
                [sys.executable, "-m", "tests.models.cross_backend_saver", folder],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
        )
    for backend, (folder, proc) in running.items():
        log, _ = proc.communicate(timeout=600)
        if proc.returncode:
            raise AssertionError(f"saving under {backend} failed:\n{log[-4000:]}")
        with open(os.path.join(folder, "saved.json")) as f:
            out[backend] = folder, json.load(f)
    return out


def _numpy(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def _batch(path):
    with np.load(path) as data:
        x = {k[2:]: data[k] for k in data.files if k.startswith("x/")}
        x = x or (data["x"] if "x" in data.files else None)
        y = data["y"] if "y" in data.files else None
    return x, y


def _size(x, y):
    return len(
        y if y is not None else next(iter(x.values())) if isinstance(x, dict) else x
    )


def _load_and_check(family, backend, folder):
    """Load `family` saved under `backend`; check its outputs, optimizer, state."""
    where = f"{family} saved under {backend}, loaded under {keras.backend.backend()}"
    path = os.path.join(folder, f"{family}.keras")
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))["compile_config"]
    assert config["optimizer"]["module"] == "keras.optimizers", where

    model = keras.saving.load_model(path)
    # What `jit_compile="auto"` gives on this backend (Keras' own rule).
    assert model.jit_compile == model._resolve_auto_jit_compile(), where
    # The claims here are about the loaded objects (outputs, optimizer class and
    # state, a frozen teacher), so under TensorFlow `predict` and the `fit` step
    # run eagerly: tracing one graph per family and backend cost 140 CPU-s of
    # the TensorFlow run, eagerly 35 (JAX runs op by op slower than compiled).
    # Every family's own tests train compiled.
    model.run_eagerly = keras.backend.backend() == "tensorflow"
    x, y = _batch(os.path.join(folder, f"{family}_batch.npz"))
    outputs = model.predict(x, batch_size=_size(x, y), verbose=0)
    if not isinstance(outputs, dict):
        outputs = {"y": outputs}
    with np.load(os.path.join(folder, f"{family}_outputs.npz")) as saved:
        assert sorted(outputs) == sorted(saved.files), where
        for key in saved.files:
            np.testing.assert_allclose(
                outputs[key], saved[key], rtol=1e-5, atol=1e-5, err_msg=where
            )
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.Adam), where
    if keras.backend.backend() != "torch":
        assert ".torch." not in type(optimizer).__module__, where

    # Variable names differ by backend (TF names some by layer, not path):
    # the shapes and the values, in order, say the state came back aligned.
    with np.load(os.path.join(folder, f"{family}_optimizer.npz")) as state:
        expected = [state[str(i)] for i in range(len(state.files))]
    actual = _numpy(optimizer.variables)
    assert [a.shape for a in actual] == [e.shape for e in expected], where
    for variable, a, e in zip(optimizer.variables, actual, expected):
        np.testing.assert_array_equal(a, e, err_msg=f"{where}: {variable.path}")
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == ITERATIONS, where

    teacher = getattr(model, "teacher", None)
    if teacher is not None:  # a distiller: only the student side trains
        assert teacher.trainable_weights == [], where
        teacher_ids = {id(v) for v in teacher.variables}
        assert not any(id(v) in teacher_ids for v in model.trainable_variables), where
    return model, where, x, y


@pytest.mark.large
@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "distiller"])
def test_file_from_another_backend_fits_on(family, saved):
    # One `fit` step (where the torch Adam failed under JAX/TF) on the batch
    # the saver wrote: it moves every weight and counts on from the saved
    # iterations.
    for backend, (folder, _) in saved.items():
        model, where, x, y = _load_and_check(family, backend, folder)
        variables = model.trainable_variables
        before = _numpy(variables)
        model.fit(x, y, batch_size=_size(x, y), epochs=1, verbose=0)
        iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        assert iterations == ITERATIONS + 1, where
        after = _numpy(variables)
        moved = [not np.array_equal(a, b) for a, b in zip(before, after)]
        assert any(moved), f"{where}: no weight moved"


@pytest.mark.large
def test_distiller_from_another_backend_fits_on(saved):
    for backend, (folder, _) in saved.items():
        model, where, x, y = _load_and_check("distiller", backend, folder)
        frozen = _numpy(model.teacher.weights)
        before = _numpy(model.trainable_variables)
        model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
        iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        assert iterations == ITERATIONS + 1, where
        after = _numpy(model.trainable_variables)
        assert all(not np.array_equal(a, b) for a, b in zip(before, after)), where
        for a, b in zip(frozen, _numpy(model.teacher.weights)):
            np.testing.assert_array_equal(a, b, err_msg=f"{where}: teacher")
