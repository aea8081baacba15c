"""Private helpers shared by the metrics."""

import numpy as np
from keras import ops


def to_numpy(x, arg, dtype="float64"):
    """Convert a tensor or array-like to a NumPy array of `dtype`."""
    try:
        if hasattr(x, "shape") and not isinstance(x, np.ndarray):
            x = ops.convert_to_numpy(x)
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"`{arg}` must be numeric. Received: {e}") from None


def check_ks(ks, arg="ks"):
    if isinstance(ks, int) and not isinstance(ks, bool):
        ks = (ks,)
    ks = tuple(ks)
    if not ks or not all(
        isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ks
    ):
        raise ValueError(f"`{arg}` must be positive integers. Received: {arg}={ks!r}")
    return ks


def check_finite(x, arg):
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"`{arg}` must be finite; it holds {int(np.sum(~np.isfinite(x)))} NaN or "
            "infinite values."
        )


def l2_normalize(x, epsilon=1e-12):
    norms = np.sqrt(np.sum(x * x, axis=-1, keepdims=True))
    return x / np.maximum(norms, epsilon)
