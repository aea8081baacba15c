"""Shared pieces of keras_mm's encoders (not public API).

`BaseEncoder` is the functional `keras.Model` base of every encoder: it checks and
standardizes the inputs before Keras sees them (in `__call__`, used for symbolic
and eager calls, and in `call`, used by the JAX trainer's `stateless_call`), and
gives `get_config`/`from_config` that return constructor arguments, as keras-hub's
`Backbone` does. The small layers below live inside the encoders' graphs only;
they are rebuilt by the encoders' constructors on load, so they are not
registered.
"""

import keras
from keras import ops

from keras_mm.utils.input_checks import _shape

OUTPUT_MODES = ("pooled", "sequence", "both")


def unique_name(name, default):
    """Return `name`, or a fresh `default`, `default_1`, ... as Keras names layers.

    The encoders need their name before `super().__init__` to open a name scope,
    so they reproduce Keras' auto-naming (the same uid counter).
    """
    if name is not None:
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(
                f"`name` must be a non-empty string without '/'. Received: "
                f"name={name!r}"
            )
        return name
    uid = keras.backend.get_uid(default)
    return default if uid == 1 else f"{default}_{uid - 1}"


def check_int(arg, value, minimum=1, allow_none=False):
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        expected = f"an integer >= {minimum}" + (" or None" if allow_none else "")
        raise ValueError(f"`{arg}` must be {expected}. Received: {arg}={value!r}")
    return value


def check_choice(arg, value, choices):
    if value not in choices:
        raise ValueError(
            f"`{arg}` must be one of {list(choices)}. Received: {arg}={value!r}"
        )
    return value


def check_rate(arg, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"`{arg}` must be a float in [0, 1). Received: {arg}={value!r}"
        )
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"`{arg}` must be a float in [0, 1). Received: {arg}={value!r}"
        )
    return float(value)


def check_positive_float(arg, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"`{arg}` must be a float > 0. Received: {arg}={value!r}")
    return float(value)


def check_heads(hidden_dim, num_heads):
    check_int("num_heads", num_heads)
    if hidden_dim % num_heads:
        raise ValueError(
            f"`hidden_dim` must be divisible by `num_heads`. Received: "
            f"hidden_dim={hidden_dim}, num_heads={num_heads}"
        )


def check_image_shape(image_shape):
    """`image_shape` as a tuple of 3 positive ints (height, width, channels)."""
    ok = (
        isinstance(image_shape, (list, tuple))
        and len(image_shape) == 3
        and all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0
            for d in image_shape
        )
    )
    if not ok:
        raise ValueError(
            "`image_shape` must be a tuple of 3 positive integers (height, width, "
            f"channels). Received: image_shape={image_shape!r}"
        )
    return tuple(image_shape)


def input_error(encoder, arg, expected, value):
    """A ValueError naming the encoder, the input, what was expected and received."""
    return ValueError(
        f"{encoder}: `{arg}` must be {expected}. Received: {arg} shape={_shape(value)}"
    )


def shape_matches(shape, expected):
    """Whether `shape` has the rank of `expected` and its sizes where both are known.

    `shape` and `expected` are tensors or shape tuples; None and symbolic sizes
    (a `jax.export` batch dimension) match any size.
    """
    shape, expected = _shape(shape), _shape(expected)
    return len(shape) == len(expected) and all(
        s is None or e is None or s == e for s, e in zip(shape, expected)
    )


def as_tensor(x, dtype=None):
    """`x` itself if it is a backend tensor or KerasTensor, else converted."""
    if isinstance(x, keras.KerasTensor) or ops.is_tensor(x):
        return x
    return ops.convert_to_tensor(x, dtype=dtype)


def outputs_for(mode, pooled, sequence):
    if mode == "pooled":
        return pooled
    if mode == "sequence":
        return sequence
    return {"pooled_output": pooled, "sequence_output": sequence}


def resolve_activation(activation):
    """The activation callable and its config value.

    Accepts whatever `keras.activations.get` accepts, and keras_mm's own names
    (`"quick_gelu"`), which are kept as names in the config.
    """
    from keras_mm.activations import ACTIVATIONS

    if isinstance(activation, str) and activation in ACTIVATIONS:
        return ACTIVATIONS[activation], activation
    try:
        function = keras.activations.get(activation)
    except (ValueError, TypeError):
        function = None
    if function is None:
        raise ValueError(
            "`activation` must be a Keras activation name, one of "
            f"{sorted(ACTIVATIONS)}, or a function. Received: activation={activation!r}"
        )
    for name, known in ACTIVATIONS.items():
        if function is known:
            return function, name
    return function, keras.activations.serialize(function)


def select_token(x, index):
    """`x[:, index]` as `(batch, 1, ...)`; `index` an int or a `(batch,)` tensor."""
    if isinstance(index, int):
        return x[:, index : index + 1]
    index = ops.cast(ops.reshape(index, (-1,) + (1,) * (len(x.shape) - 1)), "int32")
    return ops.take_along_axis(x, index, axis=1)


def last_token_index(padding_mask):
    """Index of each row's last True entry of a `(batch, T)` mask (T - 1 if none)."""
    flipped = ops.flip(ops.cast(padding_mask, "int32"), axis=1)
    return ops.shape(padding_mask)[1] - 1 - ops.argmax(flipped, axis=-1)


def transformer_blocks(
    num_layers, num_heads, intermediate_dim, dropout, activation, epsilon, dtype
):
    """`num_layers` pre-LN `TransformerBlock`s named `transformer_layer_{i}`."""
    from keras_mm.encoders.transformer_block import TransformerBlock

    return [
        TransformerBlock(
            intermediate_dim=intermediate_dim,
            num_heads=num_heads,
            dropout=dropout,
            activation=activation,
            layer_norm_epsilon=epsilon,
            normalize_first=True,
            dtype=dtype,
            name=f"transformer_layer_{i}",
        )
        for i in range(num_layers)
    ]


class BaseEncoder(keras.Model):
    """Functional-model base of the encoders: input checks and config plumbing.

    Subclasses build their graph under `keras.name_scope(name)` (so two encoders
    of one class in one model have distinct variable paths, which torch needs to
    register every variable as a parameter), call `super().__init__(inputs=...,
    outputs=...)`, then assign attributes, and implement `_check_inputs`
    (single-input encoders with `_unpack_input`, `shape_matches` and
    `_input_error`).
    """

    # Subclasses set the key of their single tensor input, if they have one.
    _input_key = None

    def _check_inputs(self, inputs):
        return inputs

    def _unpack_input(self, inputs, dtype=None):
        """The tensor input of a single-input encoder and its static shape.

        `inputs` is the tensor or a dict holding it under `_input_key`; a dict
        without that key raises a ValueError naming it. Returns `(tensor,
        shape)`, with None in the shape for unknown and symbolic sizes, so the
        checks never read a traced dimension as an int.
        """
        if isinstance(inputs, dict):
            key = self._input_key
            if key not in inputs:
                raise ValueError(
                    f"{self.__class__.__name__}: a dict input must have the key "
                    f"'{key}'. Received: keys={sorted(inputs)}"
                )
            inputs = inputs[key]
        inputs = as_tensor(inputs, dtype=dtype)
        return inputs, _shape(inputs)

    def _input_error(self, expected, value):
        """`input_error` for this encoder's `_input_key`."""
        return input_error(self.__class__.__name__, self._input_key, expected, value)

    def _input_shape_struct(self, input_shape):
        """Map a shape given in the call convention to the graph's input shapes."""
        if isinstance(input_shape, dict) and self._input_key in input_shape:
            return tuple(input_shape[self._input_key])
        return input_shape

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(self._input_shape_struct(input_shape))

    def __call__(self, inputs, *args, **kwargs):
        return super().__call__(self._check_inputs(inputs), *args, **kwargs)

    def call(self, inputs, training=None, mask=None, **kwargs):
        return super().call(
            self._check_inputs(inputs), training=training, mask=mask, **kwargs
        )

    def get_config(self):
        # Not chained: a functional model's config is a graph, not constructor
        # arguments (keras-hub's Backbone does the same).
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


class ClassToken(keras.layers.Layer):
    """Prepends a learned `(hidden_dim,)` token to a `(batch, tokens, d)` input."""

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.class_token = self.add_weight(
            name="class_token",
            shape=(1, 1, input_shape[-1]),
            initializer=self.initializer,
        )

    def call(self, inputs):
        token = ops.cast(self.class_token, inputs.dtype)
        token = ops.broadcast_to(token, (ops.shape(inputs)[0], 1, ops.shape(inputs)[2]))
        return ops.concatenate([token, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        tokens = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], tokens, input_shape[2])

    def get_config(self):
        config = super().get_config()
        config["initializer"] = keras.initializers.serialize(self.initializer)
        return config


class SequencePooling(keras.layers.Layer):
    """Pools `(batch, tokens, d)` to `(batch, d)`, ignoring padding tokens.

    Modes: "first" (token 0), "last" (last non-padding token; padding on the right
    or anywhere), "mean" (mean over non-padding tokens), "max" (max over them),
    "argmax" (the token at `argmax(token_ids)`, CLIP's end-of-text pooling).
    `offset` drops that many leading tokens first (a ViT class token). The
    reductions run in float32.
    """

    MODES = ("first", "last", "mean", "max", "argmax")

    def __init__(self, mode, offset=0, **kwargs):
        super().__init__(**kwargs)
        self.mode = check_choice("mode", mode, self.MODES)
        self.offset = check_int("offset", offset, minimum=0)

    def call(self, inputs, padding_mask=None, token_ids=None):
        x = inputs
        if self.offset:
            x = x[:, self.offset :]
            if padding_mask is not None:
                padding_mask = padding_mask[:, self.offset :]
        if self.mode == "first":
            return x[:, 0]
        if self.mode in ("mean", "max"):
            x32 = ops.cast(x, "float32")
            if padding_mask is None:
                reduce = ops.mean if self.mode == "mean" else ops.max
                return ops.cast(reduce(x32, axis=1), x.dtype)
            m = ops.expand_dims(ops.cast(padding_mask, "float32"), -1)
            if self.mode == "mean":
                total = ops.sum(x32 * m, axis=1)
                pooled = total / ops.maximum(ops.sum(m, axis=1), 1.0)
            else:
                pooled = ops.max(ops.where(m > 0, x32, -3.0e38), axis=1)
                pooled = ops.where(ops.sum(m, axis=1) > 0, pooled, 0.0)
            return ops.cast(pooled, x.dtype)
        if self.mode == "argmax":
            index = ops.argmax(token_ids, axis=-1)
        elif padding_mask is None:
            return x[:, -1]
        else:
            index = last_token_index(padding_mask)
        return select_token(x, index)[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "offset": self.offset})
        return config


class CausalMask(keras.layers.Layer):
    """A `(batch, T, T)` lower-triangular attention mask for a `(batch, T, d)` input."""

    def call(self, inputs):
        t = ops.shape(inputs)[1]
        i = ops.expand_dims(ops.arange(t), 1)
        j = ops.expand_dims(ops.arange(t), 0)
        mask = ops.expand_dims(ops.greater_equal(i, j), 0)
        return ops.broadcast_to(mask, (ops.shape(inputs)[0], t, t))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[1])

    def compute_output_spec(self, inputs):
        shape = self.compute_output_shape(inputs.shape)
        return keras.KerasTensor(shape, dtype="bool")
