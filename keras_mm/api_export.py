"""Registration of keras_mm's public classes and functions.

`keras_mm_export("keras_mm.layers.GatedFusion")` does two things:

- registers the object with Keras serialization as ``keras_mm>GatedFusion`` (every
  function, and every class with `get_config`), so a `.keras` file that contains it
  loads with `keras.saving.load_model` and no `custom_objects`. The registered name
  is part of the file format: never rename it.
- records the public path in `PUBLIC_API`, which a test walks to check that every
  public name resolves and is registered.
"""

import keras

PACKAGE = "keras_mm"

# Maps a public path such as "keras_mm.layers.GatedFusion" to the exported object.
PUBLIC_API = {}


def is_serializable(symbol):
    """Whether Keras can register `symbol`: a function, or a class with get_config."""
    return not isinstance(symbol, type) or hasattr(symbol, "get_config")


class keras_mm_export:
    """Decorator that registers an object for saving and records its public path.

    Args:
        path: str or list of str. The public path(s), e.g.
            `"keras_mm.layers.GatedFusion"`.
    """

    def __init__(self, path):
        paths = [path] if isinstance(path, str) else list(path)
        for p in paths:
            if not p.startswith(PACKAGE + "."):
                raise ValueError(
                    f"`path` must start with '{PACKAGE}.'. Received: path={p!r}"
                )
        self.paths = paths

    def __call__(self, symbol):
        if is_serializable(symbol):
            keras.saving.register_keras_serializable(package=PACKAGE)(symbol)
        for p in self.paths:
            PUBLIC_API[p] = symbol
        return symbol
