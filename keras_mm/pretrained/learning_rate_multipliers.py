import math
import re

import keras

from keras_mm.api_export import keras_mm_export


def _part(model, key):
    if not isinstance(key, str):
        raise ValueError(
            "`multipliers` keys must be attribute or layer names (str), e.g. "
            f"'image_encoder'. Received: key={key!r}"
        )
    layer = getattr(model, key, None)
    if not isinstance(layer, keras.layers.Layer):
        try:
            layer = model.get_layer(key)
        except ValueError:
            layer = None
    if layer is None:
        names = [layer.name for layer in model.layers]
        raise ValueError(
            f"`multipliers` key {key!r} is neither a layer attribute of the model "
            f"nor one of its layer names {names}. Received: key={key!r}"
        )
    return layer


def _multiplier(key, value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = float("nan")
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(
            f"`multipliers[{key!r}]` must be a finite number >= 0. Received: "
            f"{key}={value!r}"
        )
    return value


# Schedule settings that are learning rates (scaled); the others are steps or
# ratios (`alpha`, `decay_rate`) and stay.
SCHEDULE_RATES = ("initial_learning_rate", "warmup_target", "end_learning_rate")


def _scaled_schedule(rate, factor):
    config = dict(rate.get("config") or {}) if isinstance(rate, dict) else {}
    keys = [k for k in SCHEDULE_RATES if isinstance(config.get(k), (int, float))]
    if not keys or "boundaries" in config:
        raise ValueError(
            "`optimizer` must have a constant learning rate or a schedule with an "
            f"`initial_learning_rate` (CosineDecay, ExponentialDecay, ...) to be "
            f"scaled. Received: learning_rate={rate!r}"
        )
    for key in keys:
        config[key] = float(config[key]) * factor
    return keras.optimizers.schedules.deserialize(dict(rate, config=config))


def _clone(optimizer, factor, name):
    config = optimizer.get_config()
    rate = config.get("learning_rate")
    if isinstance(rate, (int, float)):
        rate = float(rate) * factor
    else:
        rate = _scaled_schedule(rate, factor)
    config.update(learning_rate=rate, name=name)
    return optimizer.__class__.from_config(config)


@keras_mm_export("keras_mm.pretrained.learning_rate_multipliers")
def learning_rate_multipliers(model, multipliers, optimizer="adamw"):
    """An optimizer that gives parts of `model` their own learning rate.

    Fine-tuning recipe: pretrained towers learn slower than freshly initialised
    heads (e.g. `{"image_encoder": 0.1, "text_encoder": 0.1}`: the encoders at a
    tenth of the heads' rate). Built on Keras' own
    `keras.optimizers.MultiOptimizer` (present in Keras 3.15): every part gets a copy of
    `optimizer` whose learning rate is multiplied by its factor, mapped by a
    pattern of the exact paths of the part's trainable variables in a
    `keras.optimizers.OptimizerMap`; every other variable uses `optimizer`
    unchanged. The update is scaled, not the gradient, so the factor means the
    same for Adam (which normalises gradients) as for SGD. It works on all three
    backends and is saved with a compiled model in `.keras`.

    To freeze a tower instead (LiT, "locked-image tuning"), set
    `model.image_encoder.trainable = False` before `compile`.

    Args:
        model: a built `keras.Model`, e.g. a keras_mm `CLIP`.
        multipliers: dict `{part: factor}`. A part is an attribute of `model`
            holding a layer (`"image_encoder"`, `"text_projection"`, ...) or a
            layer name; factor is a float >= 0.
        optimizer: a `keras.optimizers.Optimizer` with a constant learning rate
            or a schedule (`CosineDecay` with warm-up, ...: its rates are
            scaled, its steps kept), or a name (`"adamw"`, `"adam"`, `"sgd"`,
            ...; Keras' default learning rate).

    Returns:
        A `keras.optimizers.MultiOptimizer` for `model.compile(optimizer=...)`.

    Example:

    >>> model = keras.Sequential([keras.Input((4,)),
    ...     keras.layers.Dense(8, name="encoder"), keras.layers.Dense(2, name="head")])
    >>> optimizer = learning_rate_multipliers(
    ...     model, {"encoder": 0.1}, keras.optimizers.AdamW(1e-4))
    >>> sorted(round(float(o.learning_rate), 8) for o in optimizer.optimizers)
    [1e-05, 0.0001]
    >>> model.compile(optimizer=optimizer, loss="mse")

    A converted CLIP takes `{"image_encoder": 0.1, "text_encoder": 0.1}`.

    Reference:
        Howard and Ruder, 2018 (discriminative fine-tuning); Zhai et al., 2022
        (LiT); `keras.optimizers.MultiOptimizer`.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`model` must be a keras.Model. Received: model of type "
            f"{type(model).__name__}"
        )
    if not isinstance(multipliers, dict) or not multipliers:
        raise ValueError(
            "`multipliers` must be a non-empty dict {part name: factor}. Received: "
            f"multipliers={multipliers!r}"
        )
    base = keras.optimizers.get(optimizer)
    if isinstance(base, keras.optimizers.MultiOptimizer):
        raise ValueError(
            "`optimizer` must be a single optimizer, not a MultiOptimizer. "
            f"Received: optimizer={base.name!r}"
        )
    owner = {}
    table = {}
    for key, value in multipliers.items():
        factor = _multiplier(key, value)
        paths = []
        for variable in _part(model, key).trainable_variables:
            if id(variable) in owner and owner[id(variable)] != key:
                raise ValueError(
                    f"The variable {variable.path!r} belongs to both "
                    f"{owner[id(variable)]!r} and {key!r}. Received: "
                    f"multipliers={multipliers!r}"
                )
            owner[id(variable)] = key
            paths.append(re.escape(variable.path))
        if paths:
            # One pattern (and so one optimizer, also after deserialization) per
            # part: the alternation of its variables' exact paths.
            pattern = "(?:" + "|".join(sorted(set(paths))) + ")"
            table[pattern] = _clone(base, factor, f"{base.name}_{key}")
    if not table:
        raise ValueError(
            "The parts in `multipliers` have no trainable variables (frozen?). "
            f"Received: multipliers={multipliers!r}"
        )
    owned_paths = {v.path for v in model.trainable_variables if id(v) in owner}
    for variable in model.trainable_variables:
        # Variables are mapped by path: a variable of another part sharing one
        # would silently take this part's learning rate.
        if id(variable) not in owner and variable.path in owned_paths:
            raise ValueError(
                f"The variable path {variable.path!r} is used by two variables of "
                "the model, one of them outside the parts in `multipliers`; "
                "rename one of the layers. Received: "
                f"multipliers={multipliers!r}"
            )
    return keras.optimizers.MultiOptimizer(
        keras.optimizers.OptimizerMap(default_optimizer=base, optimizer_map=table)
    )
