"""Execute notebooks in Jupyter kernels and store their outputs (`make notebooks`).

Usage: python tools/execute_notebooks.py [notebooks/NN_name.ipynb ...]

With no argument, every notebooks/[0-9]*.ipynb, one after the other. Each runs in
a fresh kernel of this Python, in notebooks/, with this process's environment
(`make notebooks` sets KERAS_BACKEND=jax) and the repository first on the path,
and is written back in place with its outputs. The kernel keeps its own
matplotlib backend (inline: `display(fig)` stores a PNG), so MPLBACKEND is unset.
TensorFlow's C++ start-up lines (absl's "All log messages before
absl::InitializeLog()", oneDNN, cudart_stub), which the kernel captures from its
stderr, are dropped from the stored outputs with the CLI's own filter
(`keras_mm.cli.quiet.is_noise`), and so are tqdm's warning that ipywidgets is not
installed (it names this machine's paths) and oneDNN's note that it runs int64
ops without AVX-512. Cell timings are not recorded, so re-running
changes only what the cells print and draw. A failing cell stops with the
notebook and cell named, leaving the file as it was.
"""

import glob
import importlib.util
import os
import sys
import time

import nbclient
import nbformat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(REPO, "notebooks")


def _load_quiet():
    """keras_mm/cli/quiet.py alone (`import keras_mm` would import Keras here)."""
    path = os.path.join(REPO, "keras_mm", "cli", "quiet.py")
    spec = importlib.util.spec_from_file_location("_keras_mm_quiet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


is_tensorflow_noise = _load_quiet().is_noise
KERNEL_NOISE = (
    "TqdmWarning: IProgress not found",
    "from .autonotebook import tqdm as notebook_tqdm",
    # oneDNN's note (logged as an error) when tf.data runs an int64 op on a CPU
    # without AVX-512 (the streams' tokenizers); it falls back to Eigen.
    "oneDNN supports DT_INT64 only on platforms with AVX-512",
)


def is_noise(line):
    return is_tensorflow_noise(line) or any(text in line for text in KERNEL_NOISE)


def execute(path, timeout=1800):
    """Runs `path` top to bottom in a new kernel and saves it with its outputs."""
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": NOTEBOOKS}},
    )
    client.execute()
    nbformat.write(without_noise(notebook), path)


def without_noise(notebook):
    """`notebook` without the start-up noise in its stderr outputs (see above)."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in map(_without_noise, cell.outputs) if o]
    notebook.metadata.pop("widgets", None)
    return notebook


def _without_noise(output):
    if output.output_type != "stream" or output.name != "stderr":
        return output
    kept = [line for line in output.text.splitlines(True) if not is_noise(line)]
    output.text = "".join(kept)
    return output if kept else None


def main(paths):
    paths = paths or sorted(glob.glob(os.path.join(NOTEBOOKS, "[0-9]*.ipynb")))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (REPO, os.environ.get("PYTHONPATH")) if p
    )
    os.environ.pop("MPLBACKEND", None)
    print("KERAS_BACKEND:", os.environ.get("KERAS_BACKEND", "(unset: tensorflow)"))
    for path in paths:
        start = time.time()
        execute(os.path.abspath(path))
        print(f"{os.path.basename(path)}: executed in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
