"""The code of README.md and docs/**/*.md runs (issue 20), under the test's backend.

What runs, per page (README.md and every docs/**/*.md, found anew each run):

- ```python blocks: in page order, in ONE namespace per page (a page's blocks
  may build on each other, like notebook cells), in this process, in a fresh
  temporary working directory; the environment and working directory are
  restored afterwards. An error fails the page, its traceback naming the page
  and line.
- ```bash / ```sh / ```shell blocks, and the `$ ` lines of ```console
  blocks: every command that calls `keras-mm` (or `python -m keras_mm.cli`,
  also after `time`, `env` or `NAME=value`), in page order, in a temporary
  working directory shared by the page's commands (so `train` then
  `evaluate runs/demo` work on the same run). Each runs in this process
  through `keras_mm.cli.main`, the function the console script calls (no
  subprocess and its ~10 s of imports; tests/cli checks the script itself),
  made tiny by `tests.doc_snippets.small_command`: this process's backend
  (`--backend` and `KERAS_BACKEND=` rewritten), absolute paths moved into the
  temporary directory, tests/cli's TINY sizes (`--train-samples 128
  --test-samples 48 --batch-size 32 --width 16 --embed-dim 16 --epochs 2`,
  also on `train --resume`; on JAX the compiled train step then comes from
  tests/cli's compilation cache), `--fail-under METRIC=0`. A non-zero exit
  code fails the page. Every other shell line (`pip`, `make`, `python
  my_script.py`, `cd`, ...) is skipped by rule: installing, the Makefile and
  user scripts are not the documentation's code.

Marking a block as not run: put, on the line right before its fence,

    <!-- snippet: skip (the reason, e.g. needs several hosts) -->

The reason is required (a mark without one fails the page), and it shows in
the rendered Markdown's source for the reader. Use it only for what cannot run
here: a GPU, the network, several hosts or devices, a fragment that needs a
model the page does not build. Files a `keras-mm` command reads (a COCO file)
must exist, so such a block needs a mark too.
"""

import os

import keras
import numpy as np
import pytest

from tests.cli import conftest as _cli_conftest  # noqa: F401  (JAX compile cache)
from tests.doc_snippets import (
    PYTHON,
    SHELL,
    SnippetError,
    doc_pages,
    extract,
    keras_mm_commands,
    read_page,
    run_keras_mm,
    run_python,
    small_command,
)

PAGES = doc_pages()


def _commands(blocks):
    runnable = [b for b in blocks if b.language in SHELL and b.skip is None]
    return [command for b in runnable for command in keras_mm_commands(b)]


def test_readme_example_trains_and_saves(tmp_path):
    """README's python blocks; its example's model learns and saves to .keras."""
    blocks = extract(read_page("README.md"), "README.md")
    namespace = run_python(blocks, tmp_path)
    assert len([b for b in blocks if b.language in PYTHON]) >= 2
    model = namespace["model"]
    history = model.history.history
    # 4 classes; the fused model separates them (chance 0.25).
    assert history["accuracy"][-1] > 0.8, history["accuracy"]
    loaded = keras.saving.load_model(str(tmp_path / "fusion.keras"))
    assert isinstance(loaded.get_layer(index=-1), keras.layers.Dense)
    for saved, trained in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, trained)


@pytest.mark.parametrize("page", [p for p in PAGES if p != "README.md"])
def test_python_blocks_run(page, tmp_path):
    run_python(extract(read_page(page), page), tmp_path)


@pytest.mark.parametrize("page", PAGES)
def test_keras_mm_commands_run(page, tmp_path):
    run_keras_mm(_commands(extract(read_page(page), page)), tmp_path)


# ------------------------------------------------------- the extractor itself
BROKEN_PYTHON = """# A page

```python
x = 1
```

Text.

```python
y = x + 1
z = y / 0
```
"""


def test_broken_python_block_fails_at_its_line(tmp_path):
    blocks = extract(BROKEN_PYTHON, "docs/broken.md")
    assert [(b.language, b.line) for b in blocks] == [("python", 4), ("python", 10)]
    with pytest.raises(ZeroDivisionError) as info:
        run_python(blocks, tmp_path)
    last = info.traceback[-1]
    assert str(last.path).endswith(os.path.join("docs", "broken.md"))
    assert last.lineno + 1 == 11  # `z = y / 0`, line 11 of the page


def test_skip_mark_needs_a_reason_and_skips(tmp_path):
    for mark in ("skip", "skip ()", "skip (  )"):
        text = f"<!-- snippet: {mark} -->\n```python\n1 / 0\n```\n"
        with pytest.raises(SnippetError, match="needs its reason"):
            extract(text, "x.md")
    with pytest.raises(SnippetError, match="unknown snippet mark"):
        extract("<!-- snippet: run later -->\n```python\n```\n", "x.md")
    with pytest.raises(SnippetError, match="right before a code fence"):
        extract("<!-- snippet: skip (GPU) -->\n\n```python\n```\n", "x.md")
    with pytest.raises(SnippetError, match="never closed"):
        extract("```python\n1\n", "x.md")
    text = "<!-- snippet: skip (needs a GPU) -->\n```python\n1 / 0\n```\n"
    (block,) = extract(text, "x.md")
    assert block.skip == "needs a GPU"
    assert "__builtins__" not in run_python([block], tmp_path)  # nothing ran
    (block,) = extract("<!-- snippet: skip (one host) -->\n```bash\nkeras-mm x\n```")
    assert _commands([block]) == []


def test_broken_keras_mm_command_fails(tmp_path):
    text = (
        "```bash\npip install -e .   # skipped by rule\n"
        "keras-mm train --dataset shapes --output runs/x --no-such-flag\n```\n"
    )
    commands = _commands(extract(text, "docs/broken.md"))
    assert [(argv[-1], where) for _, argv, where in commands] == [
        ("--no-such-flag", "docs/broken.md:3")
    ]
    with pytest.raises(AssertionError, match="docs/broken.md:3.*no-such-flag"):
        run_keras_mm(commands, tmp_path)


def test_shell_lines_and_small_commands(tmp_path):
    text = """```bash
make demo
KERAS_BACKEND=torch KERAS_MM_DEBUG=1 keras-mm train --dataset shapes \\
    --output /runs/a --epochs 30   # a comment
cd x && python -m keras_mm.cli --backend torch evaluate runs/a --fail-under=x \\
    --fail-under zero_shot_top1=0.95
keras-mm train --output runs/a --resume --epochs 9
```
"""
    (block,) = extract(text, "x.md")
    (env, train, _), (_, evaluate, _), (_, resume, _) = keras_mm_commands(block)
    assert env == {"KERAS_BACKEND": "torch", "KERAS_MM_DEBUG": "1"}
    backend = keras.backend.backend()
    assert small_command(train, "/tmp/w", backend) == [
        "train",
        "--dataset",
        "shapes",
        "--output",
        "/tmp/w/runs/a",
        "--epochs",
        "2",
        "--train-samples",
        "128",
        "--test-samples",
        "48",
        "--batch-size",
        "32",
        "--width",
        "16",
        "--embed-dim",
        "16",
        "--verbose",
        "0",
    ]
    assert small_command(evaluate, "/tmp/w", backend) == [
        "--backend",
        backend,
        "evaluate",
        "runs/a",
        "--fail-under=x",
        "--fail-under",
        "zero_shot_top1=0",
        "--batch-size",
        "32",
    ]
    assert small_command(resume, "/tmp/w", backend) == [
        *("train", "--output", "runs/a", "--resume", "--epochs", "2"),
        *("--verbose", "0"),
    ]
    console = "```console\n$ time keras-mm --version\nkeras-mm 0.1\n$ make demo\n```"
    (block,) = extract(console, "x.md")
    assert [argv for _, argv, _ in keras_mm_commands(block)] == [["--version"]]
    with pytest.raises(SnippetError, match="pipe or redirection"):
        keras_mm_commands(extract("```sh\nkeras-mm evaluate r | tee log\n```")[0])
