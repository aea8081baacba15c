"""Import Keras and keras_mm without TensorFlow's C++ start-up lines.

TensorFlow (imported by Keras on its backend, and by keras-hub on every
backend) logs through absl before anything initialises absl logging, so lines
like `WARNING: All log messages before absl::InitializeLog() ...`, oneDNN's
`port.cc` note and `cudart_stub.cc` go to the process' stderr whatever
`TF_CPP_MIN_LOG_LEVEL` says. `import_quietly` runs the imports with file
descriptor 2 redirected to a temporary file and writes back every line that
is not one of those informational start-up lines (errors and Python warnings
still show).
"""

import contextlib
import importlib
import os
import re
import sys
import tempfile

# absl's format: "I0000 00:00:1796341382.595440    5815 port.cc:153] ...".
_ABSL_INFO_OR_WARNING = re.compile(r"^[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")
# A CUDA build of TensorFlow on a machine without a GPU (cuda_platform.cc).
_NO_GPU = re.compile(r"^E\d{4} [\d:.]+\s+\d+ \S+:\d+\] failed call to cuInit")
_NOISE_PREFIXES = (
    "WARNING: All log messages before absl::InitializeLog() is called",
    # The second line of cpu_feature_guard.cc's message.
    "To enable the following instructions:",
)


def is_noise(line):
    """Whether `line` is an informational TensorFlow C++ start-up line."""
    if _ABSL_INFO_OR_WARNING.match(line) or _NO_GPU.match(line):
        return True
    return line.startswith(_NOISE_PREFIXES)


def quiet_environment():
    """Set `TF_CPP_MIN_LOG_LEVEL=2` (INFO and WARNING off) unless the user set it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def filtered_native_stderr():
    """Drop TensorFlow's C++ start-up lines written to fd 2 inside the block."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no real stderr (embedded)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(True) if not is_noise(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_quietly():
    """Import Keras, TensorFlow (if installed) and keras_mm, without the noise.

    On JAX and torch Keras imports TensorFlow lazily, when it first checks for
    it (`keras.utils.set_random_seed`, data adapters, export): done here, the
    start-up lines of that import are filtered too.
    """
    quiet_environment()
    with filtered_native_stderr():
        importlib.import_module("keras")
        from keras.src.utils.module_utils import tensorflow

        if tensorflow.available:  # imports it, as Keras would anyway
            # Device discovery logs `failed call to cuInit` on machines
            # without a GPU the first time TensorFlow runs anything.
            tensorflow.config.list_physical_devices()
        importlib.import_module("keras_mm").import_subpackages()
