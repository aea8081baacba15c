"""Execute every notebook in notebooks/ under the current backend.

Notebooks `assert` their own claims (e.g. the fused classifier beats each single
modality), so a notebook that runs to the end is a passing test.

The cells run in an in-process IPython shell, with a Jupyter kernel's execution
semantics (IPython syntax and magics, `display`, one fresh namespace per notebook),
rather than in a kernel subprocess: a kernel re-imports keras, the backend and
TensorFlow for each notebook, 7-13 s each (measured), times 14 notebooks and 3
backends. `make notebooks` executes them in real kernels to commit their outputs.

Each notebook runs under one backend per `make test` (`NOTEBOOK_BACKEND`), so the
three backend runs share them: every family already trains with `fit` on every
backend in tests/models/, and running all 14 notebooks three times cost ~670 CPU-s
of a ~20-minute CI (measured: 280 s JAX, 200 s torch, 185 s TensorFlow).
`KERAS_MM_NOTEBOOKS_EVERY_BACKEND=1` runs every notebook under every backend; a
notebook missing from `NOTEBOOK_BACKEND` runs under every backend.
"""

import contextlib
import io
import os
import pathlib

import keras
import pytest

# The backend each notebook runs under in CI; every backend gets some, the costly
# ones go where they ran fastest (seconds per backend, JAX / torch / TensorFlow:
# 13_text_to_image 53 / 37 / 29, 11_vqa 30 / 35 / 25, 14_search_and_serving
# 27 / 22 / 29, 12_distillation 29 / 19 / -).
NOTEBOOK_BACKEND = {
    "01_fusion": "jax",
    "02_alignment": "jax",
    "03_clip": "torch",
    "04_vlp": "tensorflow",
    "05_vlap": "jax",
    "06_vlmp": "jax",
    "07_autoencoder": "torch",
    "08_pretrained_finetune": "tensorflow",
    "09_captioning": "tensorflow",
    "10_dialogue": "torch",
    "11_vqa": "tensorflow",
    "12_distillation": "torch",
    "13_text_to_image": "tensorflow",
    "14_search_and_serving": "torch",
}
ALL_NOTEBOOKS = sorted(
    (pathlib.Path(__file__).parent.parent / "notebooks").glob("[0-9]*.ipynb")
)
NOTEBOOKS = [
    path
    for path in ALL_NOTEBOOKS
    if os.environ.get("KERAS_MM_NOTEBOOKS_EVERY_BACKEND") == "1"
    or NOTEBOOK_BACKEND.get(path.stem, keras.backend.backend())
    == keras.backend.backend()
]


def run_notebook(path):
    """Runs the code cells of `path` in a fresh IPython shell; returns their stdout."""
    nbformat = pytest.importorskip("nbformat")
    interactiveshell = pytest.importorskip("IPython.core.interactiveshell")
    traitlets_config = pytest.importorskip("traitlets.config")
    config = traitlets_config.Config()
    config.HistoryManager.enabled = False
    shell_class = interactiveshell.InteractiveShell
    shell_class.clear_instance()
    shell = shell_class.instance(config=config)
    printed = []
    try:
        notebook = nbformat.read(path, as_version=4)
        code_cells = [c for c in notebook.cells if c.cell_type == "code"]
        for index, cell in enumerate(code_cells):
            with contextlib.redirect_stdout(io.StringIO()) as out:
                result = shell.run_cell(cell.source, store_history=False)
            printed.append(out.getvalue())
            if not result.success:
                error = result.error_in_exec or result.error_before_exec
                raise AssertionError(
                    f"{path.name}: code cell {index + 1} of {len(code_cells)} failed "
                    f"with {error!r}; its output:\n{printed[-1][-4000:]}"
                ) from error
    finally:
        shell.reset(new_session=False)
        shell_class.clear_instance()
        _reset_global_state()
    return "".join(printed)


def _reset_global_state():
    """What a notebook may change globally in this test process."""
    import matplotlib.pyplot as plt

    plt.close("all")
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()  # with a full garbage collection


@pytest.mark.large
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # Notebooks whose full run takes minutes (13: two training stages of ~8
    # minutes) shrink their models and skip their quality claims here; their
    # stored outputs are the full run's.
    monkeypatch.setenv("KERAS_MM_NOTEBOOK_SMOKE", "1")
    monkeypatch.chdir(path.parent)
    printed = run_notebook(path)
    # The notebook ran under the backend of this test process.
    if "backend: " in printed:
        assert f"backend: {keras.backend.backend()}" in printed


def test_every_backend_runs_some_notebooks_and_the_map_names_real_ones():
    assert set(NOTEBOOK_BACKEND) <= {path.stem for path in ALL_NOTEBOOKS}
    assert set(NOTEBOOK_BACKEND.values()) == {"jax", "torch", "tensorflow"}


def test_a_failing_cell_fails_the_test(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    cells = [
        nbformat.v4.new_code_cell("x = 1\nprint('first cell ran')"),
        nbformat.v4.new_code_cell("assert x == 2, 'the claim does not hold'"),
        nbformat.v4.new_code_cell("print('never reached')"),
    ]
    path = tmp_path / "broken.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    with pytest.raises(AssertionError, match="code cell 2 of 3") as info:
        run_notebook(path)
    assert "the claim does not hold" in str(info.value)
