"""Private helpers shared by the model families (no public class here).

They turn arbitrary Keras encoders (keras_mm encoders, keras-hub backbones, any
functional `keras.Model`) into the tensors the model families need: model-level
`keras.Input`s named after the stable input keys, pooled vectors or token
sequences from whatever the encoder returns, and fusion layers chosen by name.
"""

import keras
import numpy as np
from keras import ops

from keras_mm.layers import AttentionFusion, ConcatFusion, GatedFusion

# Text inputs a model can synthesise when an encoder asks for them.
_DERIVABLE_TEXT_KEYS = ("segment_ids",)
FUSIONS = ("attention", "gated", "concat")


def check_encoder(encoder, arg):
    """Raise unless `encoder` is a built Keras layer with known inputs."""
    if not isinstance(encoder, keras.layers.Layer):
        raise ValueError(
            f"`{arg}` must be a Keras layer or model. Received: {arg} of type "
            f"{type(encoder).__name__}"
        )
    struct = getattr(encoder, "_inputs_struct", None)
    if struct is None:
        try:
            struct = encoder.input
        except (AttributeError, ValueError):
            # A `keras.Sequential` built on a `keras.Input` knows `inputs` but
            # raises on `input` until it has been called.
            try:
                struct = encoder.inputs
            except (AttributeError, ValueError):
                struct = None
            if isinstance(struct, (list, tuple)) and len(struct) == 1:
                struct = struct[0]
            elif isinstance(struct, (list, tuple)) and not struct:
                struct = None
    if struct is None:
        raise ValueError(
            f"`{arg}` must be a functional model (or a model built on `keras.Input`) "
            f"so that its input shapes are known. Received: {arg}={encoder.name!r} "
            "without defined inputs"
        )
    return struct


def _dtype_kind(dtype):
    """`"bool"`, `"int"`, `"float"` or `"other"` (strings, objects) of a dtype."""
    try:
        dtype = keras.backend.standardize_dtype(dtype)
    except Exception:  # NumPy strings / objects, unknown dtypes
        return "other"
    if dtype == "bool":
        return "bool"
    if dtype.startswith(("int", "uint")):
        return "int"
    if dtype.startswith(("float", "bfloat")):
        return "float"
    return "other"


# Value dtype kinds accepted for each input dtype kind.
_ACCEPTED_KINDS = {
    "float": ("float", "int", "bool"),
    "int": ("int", "bool"),
    "bool": ("bool", "int", "float"),
}


def check_array(owner, arg, value, spec):
    """Check an array given to a model method against its `keras.Input` spec.

    Called on host data before `predict` runs, so that a wrong rank, a wrong
    non-batch size or a wrong kind of dtype raises a `ValueError` naming `arg`
    (on JAX, a failure inside `predict` would otherwise leave the model's
    variables detached). Returns `value` (a list becomes a NumPy array);
    datasets and other non-array inputs are returned unchecked.

    Args:
        owner: str. The class name used in the message.
        arg: str. The argument (input key) name.
        value: array-like.
        spec: `keras.Input` (KerasTensor) with the expected shape and dtype.
    """
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        return value
    want = tuple(spec.shape)
    got = tuple(None if d is None else int(d) for d in value.shape)
    spec_kind = _dtype_kind(spec.dtype)
    kind = _dtype_kind(value.dtype)
    ok = len(got) == len(want) and all(
        w is None or g == w for g, w in zip(got[1:], want[1:])
    )
    ok = ok and kind in _ACCEPTED_KINDS.get(spec_kind, (kind,))
    if not ok:
        shape = "(batch, " + ", ".join(str(d) for d in want[1:]) + ")"
        if len(want) == 1:
            shape = "(batch,)"
        described = {"float": "a float", "int": "an integer", "bool": "a boolean"}
        raise ValueError(
            f"{owner}: `{arg}` must be {described.get(spec_kind, 'an')} array of "
            f"rank {len(want)} and shape {shape} (None = any size). Received: "
            f"{arg} shape={got}, dtype={value.dtype}"
        )
    return value


def check_batch_size(owner, minimum, x, batch_size):
    """Refuse `fit`/`evaluate` data whose first batch has fewer than `minimum`.

    Arrays (a dict of them), a `tf.data.Dataset` (its static batch size, else
    its first batch) or a `keras.utils.PyDataset` (its first batch); other
    inputs (e.g. a `tf.distribute` dataset of per-replica batches) are not
    checked. A later, smaller last batch is allowed.
    """
    if minimum < 2 or x is None:
        return
    size, what = None, None
    if isinstance(x, dict) and all(hasattr(v, "shape") for v in x.values()):
        n = int(np.shape(next(iter(x.values())))[0])
        size = min(n, 32 if batch_size is None else int(batch_size))
        what = f"{n} example(s) with batch_size={batch_size}"
    elif hasattr(x, "element_spec"):  # tf.data.Dataset
        first = x.element_spec
        first = first[0] if isinstance(first, tuple) else first
        shape = getattr(keras.tree.flatten(first)[0], "shape", None)
        if shape is None or len(shape) == 0:  # distributed, or not batched
            return
        dim = shape[0]
        if dim is None:
            for batch in x.take(1):
                batch = batch[0] if isinstance(batch, tuple) else batch
                dim = int(keras.tree.flatten(batch)[0].shape[0])
        size, what = dim, f"a dataset whose first batch holds {dim} example(s)"
    elif isinstance(x, keras.utils.PyDataset) and len(x):
        batch = x[0]
        batch = batch[0] if isinstance(batch, tuple) else batch
        size = int(np.shape(keras.tree.flatten(batch)[0])[0])
        what = f"a PyDataset whose first batch holds {size} example(s)"
    if size is not None and size < minimum:
        raise ValueError(
            f"{owner}: its contrastive loss needs at least "
            f"{minimum} examples per batch (with one, the only "
            "candidate is the positive, the loss is 0 and nothing is "
            f"learned); use more data or a larger batch_size. Received: {what}"
        )


def _spec(tensor, name):
    return keras.Input(
        shape=tuple(tensor.shape[1:]), dtype=str(tensor.dtype), name=name
    )


def image_like_input(encoder, arg, name):
    """Model input for a single-tensor encoder (images, audio, actions)."""
    struct = check_encoder(encoder, arg)
    if isinstance(struct, dict):
        if len(struct) != 1:
            raise ValueError(
                f"`{arg}` must take a single tensor input. Received: {arg} with "
                f"inputs {sorted(struct)}"
            )
        struct = next(iter(struct.values()))
    if isinstance(struct, (list, tuple)):
        if len(struct) != 1:
            raise ValueError(
                f"`{arg}` must take a single tensor input. Received: {arg} with "
                f"{len(struct)} inputs"
            )
        struct = struct[0]
    return _spec(struct, name)


def text_inputs(encoder, arg="text_encoder"):
    """Model inputs for a text encoder: `token_ids` and its other dict keys."""
    struct = check_encoder(encoder, arg)
    if isinstance(struct, (list, tuple)) and len(struct) == 1:
        struct = struct[0]
    if not isinstance(struct, dict):
        return {"token_ids": _spec(struct, "token_ids")}
    if "token_ids" not in struct:
        raise ValueError(
            f"`{arg}` must take a `token_ids` input (a tensor or a dict with a "
            f"'token_ids' key). Received: {arg} input keys {sorted(struct)}"
        )
    return {k: _spec(v, k) for k, v in struct.items() if k not in _DERIVABLE_TEXT_KEYS}


def call_text_encoder(encoder, inputs):
    """Call `encoder` on the model's text inputs, synthesising `segment_ids`."""
    struct = check_encoder(encoder, "text_encoder")
    if isinstance(struct, (list, tuple)) and len(struct) == 1:
        struct = struct[0]
    if not isinstance(struct, dict):
        return encoder(inputs["token_ids"])
    feed = {}
    for key, spec in struct.items():
        if key in inputs:
            feed[key] = inputs[key]
        else:  # segment_ids: a single segment
            feed[key] = ops.zeros_like(ops.cast(inputs["token_ids"], spec.dtype))
    return encoder(feed)


def _pick(outputs, key, fallback):
    if isinstance(outputs, dict):
        if key in outputs:
            return outputs[key]
        if fallback in outputs:
            return outputs[fallback]
        raise ValueError(
            f"Encoder returned a dict without '{key}' or '{fallback}'. "
            f"Received keys: {sorted(outputs)}"
        )
    if isinstance(outputs, (list, tuple)):
        return outputs[0]
    return outputs


def pooled_features(outputs, pooling="mean", mask=None):
    """A `(batch, d)` vector from an encoder output (tensor or dict).

    Dicts give `pooled_output` if present, else `sequence_output`. Rank-3
    sequences are pooled: `"mean"` (masked by `mask` when given) or `"first"`
    (class token).
    """
    x = _pick(outputs, "pooled_output", "sequence_output")
    if len(x.shape) == 2:
        return x
    if len(x.shape) != 3:
        raise ValueError(
            "Encoder outputs must be (batch, features) or (batch, tokens, "
            f"features). Received: shape={tuple(x.shape)}"
        )
    if pooling == "first":
        return x[:, 0, :]
    if mask is None:
        return ops.mean(x, axis=1)
    weights = ops.expand_dims(ops.cast(mask, x.dtype), -1)
    total = ops.sum(x * weights, axis=1)
    count = ops.maximum(ops.sum(weights, axis=1), ops.cast(1.0, x.dtype))
    return total / count


def sequence_features(outputs):
    """A `(batch, tokens, d)` sequence from an encoder output."""
    x = _pick(outputs, "sequence_output", "pooled_output")
    if len(x.shape) == 2:
        return ops.expand_dims(x, 1)
    if len(x.shape) != 3:
        raise ValueError(
            "Encoder outputs must be (batch, features) or (batch, tokens, "
            f"features). Received: shape={tuple(x.shape)}"
        )
    return x


def check_choice(arg, value, choices):
    if value not in choices:
        raise ValueError(
            f"`{arg}` must be one of {list(choices)}. Received: {arg}={value!r}"
        )


def check_positive_int(arg, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"`{arg}` must be a positive integer. Received: {arg}={value!r}"
        )


def check_non_negative(arg, value):
    if not float(value) >= 0.0:
        raise ValueError(f"`{arg}` must be >= 0. Received: {arg}={value!r}")


def make_fusion(fusion, dim, dtype, name="fusion"):
    """A fusion layer from a name (`"attention"|"gated"|"concat"`) or a layer."""
    if isinstance(fusion, keras.layers.Layer):
        return fusion
    check_choice("fusion", fusion, FUSIONS)
    if fusion == "attention":
        return AttentionFusion(units=dim, dtype=dtype, name=name)
    if fusion == "gated":
        return GatedFusion(dtype=dtype, name=name)
    return ConcatFusion(hidden_dim=2 * dim, output_dim=dim, dtype=dtype, name=name)


def serialize_fusion(fusion):
    return fusion if isinstance(fusion, str) else keras.layers.serialize(fusion)


def normalize(x, dtype=None, epsilon=1e-6):
    """L2-normalise in float32, `x / max(||x||, epsilon)`, cast back to `dtype`.

    Written as `x * rsqrt(max(||x||^2, epsilon^2))` so that the gradient is
    finite at `x = 0` (`ops.normalize` clamps after `rsqrt`, and its gradient
    at an exactly-zero vector is NaN).
    """
    x32 = ops.cast(x, "float32")
    square_sum = ops.sum(ops.square(x32), axis=-1, keepdims=True)
    y = x32 * ops.rsqrt(ops.maximum(square_sum, epsilon * epsilon))
    return ops.cast(y, dtype or x.dtype)
