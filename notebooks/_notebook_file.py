"""The file every notebooks/_make_*.py generator writes (imported by them)."""

import nbformat
from nbformat.v4 import new_notebook


def write_notebook(cells, path):
    """Writes `cells` to `path`: a Python 3 notebook with stable cell ids."""
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    for index, cell in enumerate(notebook.cells):  # clean diffs on regeneration
        cell.id = f"cell-{index}"
    nbformat.write(notebook, path)
