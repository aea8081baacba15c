"""Backend helpers for tests: gradients and torch's CPU threads.

Tests only: each helper imports the active backend lazily, so one file serves
all three backends.
"""

import contextlib

import keras
import numpy as np


@contextlib.contextmanager
def single_threaded_torch():
    """Run torch on one intra-op thread inside the block (no-op elsewhere).

    On a loaded 2-core machine, torch's OpenMP pool makes small LAPACK calls
    (QR, Cholesky) 100-1000x slower (measured: 100 Deep CCA steps take 29 s
    with 2 threads, 0.6 s with 1). Training loops on tiny matrices use this.
    """
    if keras.backend.backend() != "torch":
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def value_and_grad(fn, *args):
    """Return `(value, [d value / d arg for arg in args])` as float64 NumPy.

    `fn` maps tensors to a scalar tensor; `args` are NumPy arrays (any float
    dtype; the gradient is taken with respect to the arrays as given).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        value, grads = jax.jit(jax.value_and_grad(fn, argnums=tuple(range(len(args)))))(
            *[jax.numpy.asarray(a) for a in args]
        )
    elif backend == "tensorflow":
        import tensorflow as tf

        tensors = [tf.constant(a) for a in args]
        with tf.GradientTape() as tape:
            for t in tensors:
                tape.watch(t)
            value = fn(*tensors)
        grads = tape.gradient(value, tensors)
    elif backend == "torch":
        import torch

        tensors = [torch.tensor(a, requires_grad=True) for a in args]
        value = fn(*tensors)
        grads = torch.autograd.grad(value, tensors)
    else:
        raise ValueError(f"Unsupported backend: {backend}")
    to_np = keras.ops.convert_to_numpy
    value = np.asarray(to_np(keras.ops.cast(value, "float32")), "float64")
    grads = [np.asarray(to_np(keras.ops.cast(g, "float32")), "float64") for g in grads]
    return value, grads
