"""The committed notebooks: executed, with a figure, and made by their generators.

Each notebooks/NN_name.ipynb is written by notebooks/_make_NN_name.py and then
executed under the JAX backend by `make notebooks`, which stores its outputs so
that a reader on a code host or on the docs site sees results without running it.
These checks read files only (no execution; tests/notebooks_test.py runs every
notebook under every backend), so they run in one backend's process only.

- Stale: the generator, run into a temporary folder, must produce the same cells
  (type and source, in order) as the committed notebook; otherwise someone edited
  a generator without `make notebooks`, or edited a notebook by hand.
- Executed: every code cell ran (an execution count), none failed, at least one
  printed something, at least one drew a figure (an image/png output), and the
  outputs come from the backend the docs name (JAX) and show no local paths.
"""

import pathlib
import runpy
import shutil
import sys

import keras
import pytest

nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = pathlib.Path(__file__).parent.parent / "notebooks"
COMMITTED = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
WRITER = "_notebook_file.py"  # what every generator imports to write its file
STORED_BACKEND = "jax"  # `make notebooks` executes them under this backend

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="reads files only: runs once, in the tensorflow process",
)


def generator_of(notebook):
    return notebook.with_name(f"_make_{notebook.stem}.py")


def cells(notebook):
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def generate(generator, folder):
    """Runs a copy of `generator` in `folder`; returns the notebook it writes there."""
    folder = pathlib.Path(folder)
    for source in (generator, NOTEBOOKS / WRITER):
        if folder / source.name != source:
            shutil.copyfile(source, folder / source.name)
    sys.path.insert(0, str(folder))  # as `python _make_x.py` puts its folder first
    try:
        runpy.run_path(str(folder / generator.name), run_name="__main__")
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(WRITER[:-3], None)
    (written,) = pathlib.Path(folder).glob("[0-9]*.ipynb")
    return nbformat.read(written, as_version=4)


def stale_cells(generated, committed):
    """Descriptions of where the committed notebook differs from the generated one."""
    new, old = cells(generated), cells(committed)
    problems = [
        f"cell {i + 1}: {a[0]} cell differs from the generator's"
        for i, (a, b) in enumerate(zip(new, old))
        if a != b
    ]
    if len(new) != len(old):
        problems.append(f"the generator makes {len(new)} cells, the file {len(old)}")
    return problems


def missing_outputs(notebook):
    """What the committed notebook lacks to be read without running it."""
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    outputs = [output for cell in code for output in cell.get("outputs", [])]
    problems = [
        f"code cell {i + 1} was not executed"
        for i, cell in enumerate(code)
        if cell.get("execution_count") is None
    ]
    problems += [
        f"an error output: {o.get('ename')}: {o.get('evalue')}"
        for o in outputs
        if o.output_type == "error"
    ]
    if not outputs:
        problems.append("no outputs")
    if not any("image/png" in o.get("data", {}) for o in outputs):
        problems.append("no figure (image/png output)")
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    if "site-packages" in printed:
        problems.append("outputs show the executing machine's paths (a warning?)")
    if "backend: " in printed and f"backend: {STORED_BACKEND}" not in printed:
        problems.append(f"outputs are not from the {STORED_BACKEND} backend")
    return problems


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_committed_notebook_is_current_and_executed(path, tmp_path):
    generator = generator_of(path)
    assert generator.is_file(), f"{path.name} has no generator {generator.name}"
    committed = nbformat.read(path, as_version=4)
    stale = stale_cells(generate(generator, tmp_path), committed)
    assert not stale, (
        f"{path.name} is stale relative to {generator.name} (run `make notebooks`): "
        + "; ".join(stale)
    )
    missing = missing_outputs(committed)
    assert not missing, f"{path.name}: " + "; ".join(missing) + " (`make notebooks`)"


def test_every_notebook_is_checked():
    assert len(COMMITTED) >= 12
    orphans = sorted(
        g.name
        for g in NOTEBOOKS.glob("_make_*.py")
        if not (NOTEBOOKS / f"{g.stem[len('_make_') :]}.ipynb").is_file()
    )
    assert not orphans, f"generators without a committed notebook: {orphans}"


def test_an_edited_generator_makes_the_notebook_stale(tmp_path):
    path = NOTEBOOKS / "03_clip.ipynb"
    committed = nbformat.read(path, as_version=4)
    source = generator_of(path).read_text(encoding="utf-8")

    def generate_edited(old, new, name):
        assert source.count(old) == 1, old
        folder = tmp_path / name
        folder.mkdir()
        edited = folder / generator_of(path).name
        edited.write_text(source.replace(old, new), encoding="utf-8")
        return generate(edited, folder)

    code_edit = generate_edited("epochs=5", "epochs=6", "code")
    stale = stale_cells(code_edit, committed)
    assert len(stale) == 1 and "code cell differs" in stale[0], stale
    text_edit = generate_edited("## Unseen combinations", "## Unseen pairs", "text")
    stale = stale_cells(text_edit, committed)
    assert len(stale) == 1 and "markdown cell differs" in stale[0], stale
    extra = generate_edited("cells = [", "cells = [\n    new_code_cell('1'),", "extra")
    assert any("makes" in p for p in stale_cells(extra, committed))


def test_a_notebook_without_outputs_or_figure_is_reported():
    notebook = nbformat.read(NOTEBOOKS / "03_clip.ipynb", as_version=4)
    assert missing_outputs(notebook) == []
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for cell in code:  # the figures only
        cell.outputs = [o for o in cell.outputs if "image/png" not in o.get("data", {})]
    assert missing_outputs(notebook) == ["no figure (image/png output)"]
    for cell in code:
        cell.outputs, cell.execution_count = [], None
    problems = missing_outputs(notebook)
    assert "no outputs" in problems and "code cell 1 was not executed" in problems
