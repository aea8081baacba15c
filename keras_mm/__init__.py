"""keras_mm: multimodal models for Keras 3 on TensorFlow, JAX and PyTorch."""

import importlib
import os
import sys

from keras_mm.version import __version__

_SUBPACKAGES = (
    "activations",
    "data",
    "encoders",
    "layers",
    "losses",
    "metrics",
    "models",
    "pretrained",
    "testing",
)


def _started_as_cli():
    """Whether this process is the `keras-mm` command (script or `-m`)."""
    if os.path.basename(sys.argv[0] if sys.argv else "").startswith("keras-mm"):
        return True
    argv = getattr(sys, "orig_argv", [])
    return any(
        a == "-m" and b in ("keras_mm.cli", "keras_mm.cli.__main__")
        for a, b in zip(argv, argv[1:])
    )


def import_subpackages():
    """Import every subpackage (which registers the serializable classes)."""
    for name in _SUBPACKAGES:
        importlib.import_module(f"keras_mm.{name}")


if _started_as_cli():
    # The command line parses its arguments (and answers `--help`) before it
    # imports Keras; it calls `import_subpackages` when a command runs.
    def __getattr__(name):
        if name in _SUBPACKAGES:
            return importlib.import_module(f"keras_mm.{name}")
        raise AttributeError(f"module 'keras_mm' has no attribute {name!r}")

else:
    import_subpackages()

__all__ = ["__version__", *_SUBPACKAGES]
