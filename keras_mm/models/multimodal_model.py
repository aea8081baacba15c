import copy
import importlib

import keras
import numpy as np
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.distribute.collectives import scale_loss_for_replicas
from keras_mm.distribute.tf_strategy import first_replica_values, reducible_logs
from keras_mm.models._jax_state import keep_state_on_error
from keras_mm.models.model_utils import check_array, check_batch_size

# Inputs that must share their full shape with `token_ids`.
_SAME_SHAPE_AS_TOKENS = ("padding_mask", "segment_ids")


def _shape(x):
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = np.shape(x)
    out = []
    for d in shape:
        try:
            out.append(None if d is None else int(d))
        except Exception:  # symbolic dimension while tracing
            out.append(None)
    return tuple(out)


def _portable_optimizer_config(config):
    """A serialized optimizer under its public `keras.optimizers` class.

    The torch backend builds `keras.optimizers.Adam` & co. as subclasses in
    `keras.src.backend.torch.optimizers` (same class name, same config and
    variables); a file naming those would rebuild the torch optimizer under
    JAX or TensorFlow. Nested optimizers (`inner_optimizer`) are rewritten too.
    """
    if isinstance(config, dict):
        config = {k: _portable_optimizer_config(v) for k, v in config.items()}
        module, name = config.get("module"), config.get("class_name")
        if (
            isinstance(module, str)
            and module.startswith("keras.src.backend.")
            and isinstance(getattr(keras.optimizers, str(name), None), type)
        ):
            config["module"] = "keras.optimizers"
            config["registered_name"] = None
    return config


def compile_arguments(config):
    """`compile()` arguments from a saved compile config, on this backend.

    The optimizer is rebuilt as its public class. Files from another backend
    (or from before `"backend"` was recorded) get `jit_compile="auto"`: a JAX
    file's resolved `True` would run torch.compile under torch.
    """
    config = dict(config)
    config["optimizer"] = _portable_optimizer_config(config.get("optimizer"))
    if config.pop("backend", None) != keras.backend.backend():
        config["jit_compile"] = "auto"
    return keras.saving.deserialize_keras_object(config)


@keras_mm_export("keras_mm.models.MultimodalModel")
class MultimodalModel(keras.Model):
    """Base class of keras_mm's model families: a functional model with dict I/O.

    Subclasses build their graph from `keras.Input`s named after stable keys
    (`"images"`, `"token_ids"`, `"padding_mask"`, `"audio"`, ...), call
    `super().__init__(inputs=..., outputs=..., dtype=...)` and then implement
    `loss_terms(x, y, y_pred, training)`, which returns a dict of float32 scalar
    tensors with a `"loss"` entry. This base class then provides:

    - input validation before the graph runs (eager calls, `fit`, `predict`,
      all backends): a `ValueError` names the missing key, the wrong rank or the
      mismatched batch sizes with the received shapes;
    - `compute_loss` = `loss_terms(...)["loss"]` + the layers' `add_loss` terms,
      so `compile(optimizer=...)` + `fit(x)` trains without labels; each other
      term is reported as a metric of the same name;
    - on torch, registration of every variable as a torch parameter, also when
      two nested encoders hold variables with the same path (otherwise
      `zero_grad` misses the duplicates and their gradients accumulate).

    Args:
        inputs: dict of `keras.Input`, keyed by input name.
        outputs: dict of output tensors.
        dtype: optional dtype policy of the model's own layers.
        **kwargs: `name`, `trainable`.
    """

    def __init__(self, inputs, outputs, dtype=None, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        if dtype is not None:
            self.dtype_policy = keras.dtype_policies.get(dtype)
        self._term_trackers = {}

    # ------------------------------------------------------------------ inputs
    def _fill_inputs(self, inputs):
        """Hook: complete optional inputs (e.g. a default modality mask).

        A missing `padding_mask` is derived as `token_ids != pad_token_id` when
        the text encoder knows its padding id (keras_mm's `TextEncoder`).
        """
        if (
            "padding_mask" in self._inputs_struct
            and "padding_mask" not in inputs
            and "token_ids" in inputs
        ):
            pad = getattr(getattr(self, "text_encoder", None), "pad_token_id", None)
            if pad is not None:
                ids = inputs["token_ids"]
                if isinstance(ids, (np.ndarray, list, tuple)):
                    inputs["padding_mask"] = np.asarray(ids) != pad
                else:
                    inputs["padding_mask"] = ops.not_equal(ids, pad)
        return inputs

    def _validate_inputs(self, inputs):
        name = self.__class__.__name__
        expected = self._inputs_struct
        keys = list(expected)
        if not isinstance(inputs, dict):
            raise ValueError(
                f"{name}: `inputs` must be a dict with keys {keys}. Received: "
                f"inputs of type {type(inputs).__name__} with shape "
                f"{_shape(inputs) if not isinstance(inputs, (list, tuple)) else '?'}"
            )
        received = {k: _shape(v) for k, v in inputs.items()}
        described = ", ".join(f"{k} shape={s}" for k, s in received.items())
        missing = [k for k in keys if k not in inputs]
        if missing:
            inputs = self._fill_inputs(dict(inputs))
            missing = [k for k in keys if k not in inputs]
        if missing:
            raise ValueError(
                f"{name}: `inputs` is missing the key(s) {missing}. Expected keys: "
                f"{keys}. Received: {described or 'an empty dict'}"
            )
        shapes = {k: _shape(inputs[k]) for k in keys}
        for k in keys:
            want = tuple(expected[k].shape)
            got = shapes[k]
            ok = len(got) == len(want) and all(
                w is None or g is None or w == g for g, w in zip(got[1:], want[1:])
            )
            if not ok:
                raise ValueError(
                    f"{name}: inputs['{k}'] must have rank {len(want)} and shape "
                    f"{want} (None = any size). Received: {k} shape={got}"
                )
        for k in _SAME_SHAPE_AS_TOKENS:
            if k in shapes and "token_ids" in shapes:
                a, b = shapes["token_ids"], shapes[k]
                if any(
                    x is not None and y is not None and x != y for x, y in zip(a, b)
                ):
                    raise ValueError(
                        f"{name}: inputs['{k}'] must have the shape of "
                        f"inputs['token_ids']. Received: token_ids shape={a}, "
                        f"{k} shape={b}"
                    )
        batches = {shapes[k][0] for k in keys if shapes[k][0] is not None}
        if len(batches) > 1:
            described = ", ".join(f"{k} shape={shapes[k]}" for k in keys)
            raise ValueError(
                f"{name}: every input must have the same batch size. Received: "
                f"{described}"
            )
        return {k: inputs[k] for k in keys}

    def _check_array_inputs(self, x):
        # Arrays are checked before Keras' data adapter slices them (its own
        # cardinality check fails on mismatched dict inputs without naming
        # the key); datasets are checked batch by batch in `__call__`.
        if isinstance(x, dict) and all(hasattr(v, "shape") for v in x.values()):
            x = self._validate_inputs(x)
            for key, value in x.items():
                check_array(
                    self.__class__.__name__, key, value, self._inputs_struct[key]
                )

    def check_input(self, key, value):
        """`value` checked against the model input `key` (rank, sizes, dtype)."""
        if key not in self._inputs_struct:
            raise ValueError(
                f"{self.__class__.__name__}: unknown input {key!r}. Inputs: "
                f"{list(self._inputs_struct)}"
            )
        return check_array(
            self.__class__.__name__, key, value, self._inputs_struct[key]
        )

    def _predict_with(self, model, x, batch_size):
        """`model.predict(x)` for a tower sharing this model's variables."""
        with keep_state_on_error(self):
            return model.predict(x, batch_size=batch_size, verbose=0)

    # Least batch size of a contrastive objective (1 = no limit). With one
    # example per batch the only candidate is the positive: the loss is 0.
    min_batch_size = 1

    def _check_batch_size(self, x, batch_size):
        """Refuse data whose batches are smaller than `min_batch_size`."""
        check_batch_size(self.__class__.__name__, self.min_batch_size, x, batch_size)

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_array_inputs(x)
        self._check_batch_size(x, kwargs.get("batch_size", args[0] if args else None))
        if getattr(self, "optimizer", None) is not None and not self.optimizer.built:
            # Built here, outside the failure guard, so its variables are kept.
            self.optimizer.build(self.trainable_variables)
        with keep_state_on_error(self):
            return super().fit(x, y, *args, **kwargs)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras' TF trainer averages the first distributed batch over the
        # replicas only for its shapes, which fails under a multi-worker
        # strategy (keras_mm.distribute.tf_strategy): use the first local slice.
        strategy = getattr(self, "_distribute_strategy", None)
        if iterator is not None and strategy is not None:
            for _, _, batches in iterator:
                data_batch = first_replica_values(next(batches), strategy)
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # The logs of each train/test step (keras_mm.distribute.tf_strategy).
        return reducible_logs(super().compute_metrics(x, y, y_pred, sample_weight))

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_array_inputs(x)
        self._check_batch_size(x, kwargs.get("batch_size", args[0] if args else None))
        with keep_state_on_error(self):
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._check_array_inputs(x)
        with keep_state_on_error(self):
            return super().predict(x, *args, **kwargs)

    def __call__(self, inputs, *args, **kwargs):
        return super().__call__(self._validate_inputs(inputs), *args, **kwargs)

    def call(self, inputs, training=None, mask=None, **kwargs):
        # JAX's stateless_call reaches `call` without `__call__`.
        inputs = self._validate_inputs(inputs)
        return super().call(inputs, training=training, mask=mask, **kwargs)

    # -------------------------------------------------------------------- loss
    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        if loss is not None:
            raise ValueError(
                f"{self.__class__.__name__} computes its own objective in "
                "`compute_loss`; `compile()` takes no `loss`. Received: "
                f"loss={loss!r}"
            )
        for key in ("loss_weights",):
            if kwargs.get(key) is not None:
                raise ValueError(
                    f"{self.__class__.__name__}: `compile()` takes no `{key}`; set "
                    "the loss weights in the constructor."
                )
        super().compile(optimizer=optimizer, **kwargs)

    def get_compile_config(self):
        # Portable across backends: the optimizer under its public class (the
        # torch backend's `Adam` lives in `keras.src.backend.torch...`, which
        # no other backend can train with) and the saving backend, so that its
        # resolved `jit_compile` is not carried to another backend.
        config = super().get_compile_config()
        if config:
            config["optimizer"] = _portable_optimizer_config(config["optimizer"])
            config["backend"] = keras.backend.backend()
        return config

    def compile_from_config(self, config):
        # Keras skips (with a warning) models whose `compile` is overridden; ours
        # only refuses `loss`, so a loaded `.keras` file comes back compiled.
        config = compile_arguments(config)
        config.pop("loss", None)
        config.pop("loss_weights", None)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def loss_terms(self, x, y=None, y_pred=None, training=False):
        """Return a dict of float32 scalar losses with the total under `"loss"`."""
        raise NotImplementedError

    def _add_term_trackers(self, names):
        # One `Mean` metric per named loss term, shown in `fit`/`evaluate` logs.
        for term in names:
            tracker = keras.metrics.Mean(name=term)
            setattr(self, f"_{term}_tracker", tracker)
            self._term_trackers[term] = tracker

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if y_pred is None:
            y_pred = self(x, training=training)
        terms = self.loss_terms(x, y=y, y_pred=y_pred, training=training)
        total = ops.cast(terms["loss"], "float32")
        for extra in self.losses:
            total = total + ops.cast(extra, "float32")
        for term, value in terms.items():
            if term in self._term_trackers:
                self._term_trackers[term].update_state(value)
        # Keras' TF trainer sums the replicas' gradients: divide by their number,
        # as its built-in losses do (keras_mm.distribute.scale_loss_for_replicas).
        return scale_loss_for_replicas(total)

    def evaluate_loss_terms(self, x, y=None):
        """Python floats of every loss term on one batch `x` (inference mode)."""
        x = self._validate_inputs(x)
        y_pred = self(x, training=False)
        terms = self.loss_terms(x, y=y, y_pred=y_pred, training=False)
        return {k: float(ops.convert_to_numpy(v)) for k, v in terms.items()}

    def submodel(self, input_keys, output_key):
        """A new `keras.Model` from some inputs to one output, sharing layers.

        E.g. `submodel(["token_ids", "padding_mask"], "text_embeddings")` is the
        text tower. Raises if the output needs an input that is not listed.
        """
        unknown = [k for k in input_keys if k not in self._inputs_struct]
        if unknown or output_key not in self._outputs_struct:
            raise ValueError(
                f"{self.__class__.__name__}: unknown input key(s) {unknown} or "
                f"output {output_key!r}. Inputs: {list(self._inputs_struct)}; "
                f"outputs: {list(self._outputs_struct)}"
            )
        inputs = {k: self._inputs_struct[k] for k in input_keys}
        if len(inputs) == 1:  # a single tensor in, like the encoders
            inputs = next(iter(inputs.values()))
        return keras.Model(
            inputs, self._outputs_struct[output_key], name=f"{self.name}_{output_key}"
        )

    def encode(self, inputs, output_key, batch_size=256):
        """One output computed from only the inputs it needs, as NumPy.

        E.g. `encode({"token_ids": t, "padding_mask": m}, "text_embeddings")`.
        """
        inputs = {k: self.check_input(k, v) for k, v in inputs.items()}
        model = self.submodel(list(inputs), output_key)
        if len(inputs) == 1:
            inputs = next(iter(inputs.values()))
        return self._predict_with(model, inputs, batch_size)

    # ------------------------------------------------------------------- torch
    def _track_variables(self):
        # Only reached on the torch backend (`TorchLayer._track_variables`).
        # Keras keys torch parameters by variable path; two nested encoders can
        # hold different variables with one path (e.g. "proj/kernel"), and all
        # but one would be left out of `parameters()` and `zero_grad()`.
        super()._track_variables()
        registered = {id(p) for p in self._torch_params.values()}
        for i, variable in enumerate(self.variables):
            if id(variable.value) not in registered:
                key = f"{variable.path}#{i}"
                self._torch_params[key] = variable.value
                registered.add(id(variable.value))

    def _finish_init(self):
        """Call at the end of a subclass `__init__` (after assigning layers)."""
        if keras.backend.backend() == "torch":
            self._track_variables()

    # ----------------------------------------------------------------- config
    # Constructor arguments holding a layer (or a dict of layers) to deserialize.
    _nested_layer_keys = ()
    # Named tiny configurations: {name: {"description": str, **constructor args}}
    # where an encoder is given as {"class_name": "ImageEncoder", "config": {...}}
    # (a class of `keras_mm.encoders`).
    presets = {}

    @classmethod
    def from_preset(cls, name, **overrides):
        """Build a named tiny configuration with freshly initialised weights.

        These are architectures, not pretrained checkpoints: nothing is
        downloaded. `overrides` replace constructor arguments; a dict given for
        an encoder argument updates that encoder's config (e.g.
        `text_encoder={"vocabulary_size": 40}`).

        Args:
            name: str. One of `cls.presets`.
            **overrides: constructor arguments to change.
        """
        if name not in cls.presets:
            raise ValueError(
                f"Unknown {cls.__name__} preset {name!r}. Available presets: "
                f"{sorted(cls.presets)}"
            )
        config = copy.deepcopy(cls.presets[name])
        config.pop("description", None)
        for key, value in overrides.items():
            spec = config.get(key)
            if (
                isinstance(spec, dict)
                and "class_name" in spec
                and isinstance(value, dict)
            ):
                spec["config"].update(value)
            elif (
                isinstance(spec, dict)
                and isinstance(value, dict)
                and all(
                    isinstance(v, dict) and "class_name" in v for v in spec.values()
                )
            ):
                for k, v in value.items():
                    spec[k]["config"].update(v)
            else:
                config[key] = value
        encoders = importlib.import_module("keras_mm.encoders")

        def build(spec):
            if isinstance(spec, dict) and "class_name" in spec:
                return getattr(encoders, spec["class_name"])(**spec["config"])
            return spec

        for key in cls._nested_layer_keys:
            value = config.get(key)
            if isinstance(value, dict) and "class_name" not in value:
                config[key] = {k: build(v) for k, v in value.items()}
            else:
                config[key] = build(value)
        return cls(**config)

    def get_config(self):
        # Not chained: a functional model's config is a graph, not constructor
        # arguments (keras-hub's `Backbone` does the same).
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = copy.deepcopy(config)  # deserialization may consume nested dicts
        for key in cls._nested_layer_keys:
            value = config.get(key)
            if isinstance(value, dict) and "class_name" in value:
                config[key] = keras.layers.deserialize(
                    value, custom_objects=custom_objects
                )
            elif isinstance(value, dict):
                config[key] = {
                    k: keras.layers.deserialize(v, custom_objects=custom_objects)
                    for k, v in value.items()
                }
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
