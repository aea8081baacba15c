"""The CLI tests' shared trained run, and on JAX their shared XLA compilations.

`trained_run` is one tiny 2-epoch shapes run for the whole session: the tests
that only read a finished run (evaluate, export, classify, index, search)
share it instead of each training their own.

On JAX, share XLA compilations between the CLI tests' many tiny runs.

Each `keras-mm train` builds the same tiny model afresh, and JAX compiles its
train step again every time (tens of seconds on a busy 2-core machine). A
persistent compilation cache in a temporary directory, used by this process
and by the `keras-mm` subprocesses the tests start (`cli_helpers.run_console`),
compiles each distinct program once. Compiled programs are the same either way.
"""

import atexit
import shutil
import tempfile

import keras
import pytest

from tests.cli import cli_helpers

if keras.backend.backend() == "jax":
    import jax

    _cache = tempfile.mkdtemp(prefix="keras_mm_cli_xla_cache_")
    atexit.register(shutil.rmtree, _cache, True)
    jax.config.update("jax_compilation_cache_dir", _cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    cli_helpers.SUBPROCESS_ENV.update(
        {
            "JAX_COMPILATION_CACHE_DIR": _cache,
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
        }
    )


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    assert cli_helpers.train(run, "--epochs", "2") == 0
    return run
