"""Private: keep a model usable when a JAX `fit`/`evaluate`/`predict` fails."""

import contextlib

import keras
from keras import ops


def _state_variables(model):
    variables = list(model.variables)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        variables += list(optimizer.variables)
    variables += list(getattr(model, "metrics_variables", []))
    unique = {}
    for v in variables:
        unique.setdefault(id(v), v)
    return list(unique.values())


@contextlib.contextmanager
def keep_state_on_error(model):
    """Keep `model` usable when a `fit`/`evaluate`/`predict` inside fails.

    Keras' JAX trainer detaches every variable's value (`_value = None`) before
    its first step and reattaches it after the loop; an error in the first
    step (e.g. an input of the wrong shape met while tracing) leaves them
    detached, and every later call, `save` included, fails with "'NoneType'
    object is not callable". The values are immutable JAX arrays, so keeping
    references costs no copy; on an error the detached ones are put back.
    """
    if keras.backend.backend() != "jax":
        yield
        return
    saved = [(v, v._value) for v in _state_variables(model)]
    try:
        yield
    except BaseException:
        for v, value in saved:
            if v._value is None:
                v._value = value
        for v in _state_variables(model):  # created inside the failed call
            if v._value is None:
                v._value = ops.zeros(v.shape, v.dtype)
        model._jax_state = None
        raise
