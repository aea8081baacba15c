"""The `keras-mm` command line: `train`, `evaluate`, `export`, `classify`,
`index` and `search`.

`main(argv)` runs a command in this process and returns its exit code. Keras
chooses its backend once, when it is first imported (and `import keras_mm`
imports it), so `--backend X` naming another backend than the loaded one runs
the command again in a fresh interpreter with `KERAS_BACKEND=X`: the console
script replaces its process (`os.execve`), an in-process call waits for a
subprocess and returns its exit code.
"""

import os
import subprocess
import sys

from keras_mm.cli.parser import BACKENDS, EXIT_USAGE, requested_backend
from keras_mm.cli.quiet import quiet_environment


def _loaded_backend():
    keras = sys.modules.get("keras")
    if keras is None:
        return os.environ.get("KERAS_BACKEND")
    return keras.backend.backend()


def main(argv=None):
    """Run `keras-mm` with `argv` (default `sys.argv[1:]`); return the exit code."""
    quiet_environment()  # before TensorFlow is first imported
    console = argv is None
    argv = sys.argv[1:] if console else [str(a) for a in argv]
    backend = requested_backend(argv)
    if backend is not None and backend not in BACKENDS:
        print(
            f"keras-mm: error: argument --backend: invalid choice: {backend!r} "
            f"(choose from {', '.join(BACKENDS)})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if backend is not None and backend != _loaded_backend():
        env = dict(os.environ, KERAS_BACKEND=backend)
        command = [sys.executable, "-m", "keras_mm.cli", *argv]
        if console:
            sys.stdout.flush()
            sys.stderr.flush()
            os.execve(sys.executable, command, env)
        return subprocess.call(command, env=env)

    from keras_mm.cli.app import run

    return run(argv)


__all__ = ["main"]
