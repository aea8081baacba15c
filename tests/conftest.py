"""Test-session settings and fixtures shared by every test folder.

`make test` spreads each backend's run over three pytest-xdist workers, one test file
per work unit (so module fixtures are built once), and the files that use one of
the costly session fixtures below (`SHARED_FIXTURES`) as one unit (so it is built
once too). Workers take units in collection order, so the costly files come first
(the notebooks, then files with `large` tests): the last units to start are then
short and the workers end close together.

`hf_checkpoints`: tiny random `transformers` CLIP and SigLIP checkpoints and their
reference outputs, made once per test session by tests/pretrained/hf_reference.py
in a subprocess (torch and `transformers` never share a process with another Keras
backend); skipped when `transformers` is not installed. Nothing is downloaded.
"""

import gc
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="session")
def hf_checkpoints(tmp_path_factory):
    """Directory with `clip/`, `siglip/` and `reference.npz` from `transformers`."""
    for module in ("torch", "transformers", "safetensors"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"`{module}` is not installed (a test-only dependency)")
    # `make test` shares one copy between its three backend runs (the files are
    # read only, and the same for every backend): ~10 CPU-s of torch and
    # `transformers` saved per run.
    shared = os.environ.get("KERAS_MM_TEST_SHARED_DIR")
    if shared and os.path.exists(os.path.join(shared, "hf", "reference.npz")):
        return os.path.join(shared, "hf")
    out = str(tmp_path_factory.mktemp("hf"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "pretrained", "hf_reference.py"), out],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"hf_reference.py failed:\n{result.stderr[-4000:]}")
    if shared:
        shutil.copytree(out, os.path.join(shared, "hf.partial"), dirs_exist_ok=True)
        os.replace(os.path.join(shared, "hf.partial"), os.path.join(shared, "hf"))
    return out


# Session fixtures worth building once per backend run: the test files that use one
# (that name it) form one work unit.
SHARED_FIXTURES = ("hf_checkpoints", "trained_run")


# Tests that start every other backend themselves (`every_backend` marker) make their
# whole claim in any one backend's run; CI runs them once, in the lightest run.
EVERY_BACKEND_HOST = "torch"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "every_backend: starts the other backends itself; runs in the "
        f"{EVERY_BACKEND_HOST} run only",
    )
    config.addinivalue_line(
        "markers",
        "backend_independent: uses no Keras backend (e.g. tf.data alone); runs in "
        f"the {EVERY_BACKEND_HOST} run only",
    )


def pytest_collection_finish(session):
    """Moves what collection imported (Keras, the backends, TensorFlow: ~500,000
    objects that live as long as the process) out of the garbage collector's reach.

    Keras' `clear_session()` (called by the CLI and between notebooks) and Python's
    own full collections traverse every tracked object: 0.24 s each for the imports
    alone, 129 of them in one JAX run. Measured on a gc-heavy subset (CLI argument
    errors, two notebooks, VLP, classify/search): 49.1 -> 43.4 CPU-s. Frozen objects
    are never collected, which is what modules and their globals are anyway.
    """
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(config, items):
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend != EVERY_BACKEND_HOST:
        why = {
            "every_backend": "starts every other backend itself",
            "backend_independent": "uses no Keras backend",
        }
        for item in items:
            for marker, reason in why.items():
                if item.get_closest_marker(marker):
                    item.add_marker(pytest.mark.skip(
                        reason=f"{reason}: runs once per CI, in the "
                        f"{EVERY_BACKEND_HOST} run"
                    ))  # fmt: skip

    def rank(item):
        if item.path.name == "notebooks_test.py":
            return 0
        return 1 if item.path in large_files else 2

    large_files = {item.path for item in items if item.get_closest_marker("large")}
    order = {item.path: i for i, item in reversed(list(enumerate(items)))}
    items.sort(key=lambda item: (rank(item), order[item.path]))


def pytest_xdist_make_scheduler(config, log):
    """One work unit per test file, or per shared session fixture."""
    from xdist.scheduler import LoadScopeScheduling

    units = {}

    def unit(path):
        if path not in units:
            with open(config.rootpath / path, encoding="utf-8") as f:
                text = f.read()
            shared = [name for name in SHARED_FIXTURES if name in text]
            units[path] = shared[0] if shared else path
        return units[path]

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return unit(nodeid.split("::", 1)[0])

    return UnitScheduling(config, log)
