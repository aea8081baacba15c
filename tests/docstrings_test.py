"""Every docstring `Example:` of keras_mm runs as a doctest (issue 20), per backend.

The modules are found anew each run: every module of the `keras_mm` package
whose source holds `>>>`. An example that cannot run here (it loads a
checkpoint, needs the network or trains for minutes) carries
`# doctest: +SKIP` on each of its lines; everything else runs. Examples print
backend-neutral values (`tuple(y.shape)`, Python floats), see STYLE.md.

On JAX the examples of `keras_mm.encoders`, `keras_mm.models` and
`CrossModalAttention` are not run: eager JAX compiles every op for every new
shape, and building and calling these blocks eagerly cost ~55 s of
compilation there (measured, CPU seconds; ~20 s for all the other modules
together) against ~4 s on TensorFlow and ~1 s on PyTorch, which run the same
backend-neutral code.
"""

import doctest
import importlib
import os
import pkgutil

import keras
import pytest

import keras_mm


def _modules_with_examples():
    names = []
    for info in pkgutil.walk_packages(keras_mm.__path__, "keras_mm."):
        spec = importlib.util.find_spec(info.name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        with open(spec.origin, encoding="utf-8") as f:
            if ">>>" in f.read():
                names.append(info.name)
    return sorted(names)


MODULES = _modules_with_examples()
JAX_NOT_RUN = (
    "keras_mm.encoders.",
    "keras_mm.models.",
    "keras_mm.layers.cross_modal_attention",
)


def test_examples_are_found():
    # The discovery itself: a package moved or renamed must not drop its examples.
    for name in ("keras_mm.layers.attention_fusion", "keras_mm.data.shapes"):
        assert name in MODULES
    assert len(MODULES) > 40, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    if keras.backend.backend() == "jax" and name.startswith(JAX_NOT_RUN):
        pytest.skip("eager JAX compiles every op: run on TensorFlow and PyTorch")
    monkeypatch.chdir(tmp_path)  # examples that save files write them here
    module = importlib.import_module(name)
    result = doctest.testmod(module, verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} failing example(s) in {name}"
    skipped_only = all(
        ex.options.get(doctest.SKIP)
        for test in doctest.DocTestFinder().find(module)
        for ex in test.examples
    )
    assert result.attempted > 0 or skipped_only, os.path.basename(module.__file__)
