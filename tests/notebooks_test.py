"""Execute every notebook in notebooks/ headlessly under the current backend.

Notebooks `assert` their own claims (e.g. the fused classifier beats each single
modality), so a notebook that runs to the end is a passing test.
"""

import pathlib

import keras
import pytest

NOTEBOOKS = sorted(
    (pathlib.Path(__file__).parent.parent / "notebooks").glob("[0-9]*.ipynb")
)


@pytest.mark.large
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    # The kernel ran under the backend of this test process.
    outputs = "".join(
        o.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )
    if "backend: " in outputs:
        assert f"backend: {keras.backend.backend()}" in outputs
