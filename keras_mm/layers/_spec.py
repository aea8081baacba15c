"""Private: the symbolic output of a layer whose `call` is traced."""

import keras


def traced_output_spec(layer, *args, **kwargs):
    """Trace `layer.call` and give float outputs the layer's compute dtype.

    Tracing `call` itself validates masks and call options in functional models
    exactly as in eager calls. The traced dtype is not the eager one on every
    backend: under `mixed_bfloat16`, torch's symbolic trace of a `Dense` on a
    concatenation gives float32 while the eager output (and JAX's and
    TensorFlow's trace) is bfloat16, so a model's output dtype would depend on
    the backend. The layer's outputs are in its compute dtype; say so.
    """
    spec = keras.Operation.compute_output_spec(layer, *args, **kwargs)
    dtype = layer.compute_dtype

    def fix(x):
        if "float" in str(x.dtype):
            return keras.KerasTensor(x.shape, dtype=dtype, sparse=x.sparse)
        return x

    return keras.tree.map_structure(fix, spec)
