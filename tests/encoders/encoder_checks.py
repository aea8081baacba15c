"""Checks shared by the encoder tests (tests only)."""

import keras
import numpy as np


def to_numpy(x):
    return keras.tree.map_structure(
        lambda t: np.asarray(keras.ops.convert_to_numpy(t), dtype="float64"), x
    )


def forward(encoder, x):
    """Inference outputs as float64 NumPy.

    JAX compiles every op anew for each new input shape when run eagerly
    (seconds per call); one jitted `predict_on_batch` is much cheaper there.
    Eager calls are tested by `run_layer_test`.
    """
    if keras.backend.backend() == "jax":
        return to_numpy(encoder.predict_on_batch(x))
    return to_numpy(encoder(x))


def layer_norm(x, gamma, beta, epsilon):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * gamma + beta


def check_contract(
    test, cls, kwargs, data, expected_shape, expected_num_trainable_weights
):
    """The checks of `TestCase.run_layer_test`, for encoder models, jitted.

    Config round trip (direct and through Keras serialization), a symbolic call
    inside a functional model, outputs (shape, dtype, weight counts), one `fit`
    step that changes the weights, and `mixed_bfloat16` (bfloat16 outputs,
    float32 weights). Calls go through `forward`, so JAX compiles each model once
    instead of op by op (`run_layer_test` costs several times more there).
    """
    encoder = cls(**kwargs)
    config = encoder.get_config()
    test.assertEqual(cls.from_config(config).get_config()["name"], config["name"])
    revived = cls.from_config(dict(config, name=None))
    test.assertEqual(dict(revived.get_config(), name=None), dict(config, name=None))
    serialized = keras.saving.serialize_keras_object(encoder)
    test.assertEqual(serialized["registered_name"], f"keras_mm>{cls.__name__}")
    revived = keras.saving.deserialize_keras_object(dict(serialized))
    test.assertIsInstance(revived, cls)

    # Symbolic call in an outer functional model.
    if isinstance(data, dict):
        inputs = {
            k: keras.Input(shape=v.shape[1:], dtype=str(v.dtype), name=k)
            for k, v in data.items()
        }
    else:
        inputs = keras.Input(shape=data.shape[1:], dtype=str(data.dtype))
    symbolic = encoder(inputs)
    test.assertEqual(tuple(symbolic.shape[1:]), tuple(expected_shape[1:]))
    shapes = keras.tree.map_structure(lambda t: tuple(t.shape), data)
    computed = encoder.compute_output_shape(shapes)
    test.assertEqual(tuple(computed[1:]), tuple(expected_shape[1:]))

    # Outputs and weights.
    output = encoder.predict_on_batch(data)
    test.assertEqual(tuple(output.shape), tuple(expected_shape))
    test.assertEqual(str(output.dtype), "float32")
    test.assertEqual(len(encoder.trainable_weights), expected_num_trainable_weights)
    test.assertEqual(len(encoder.non_trainable_weights), 0)

    # One fit step changes the weights.
    encoder.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [np.array(w) for w in to_numpy(encoder.trainable_weights)]
    rng = np.random.default_rng(0)
    target = rng.normal(size=expected_shape).astype("float32")
    encoder.fit(data, target, batch_size=expected_shape[0], epochs=1, verbose=0)
    after = to_numpy(encoder.trainable_weights)
    test.assertTrue(any(not np.allclose(b, a) for b, a in zip(before, after)))

    # mixed_bfloat16: float32 weights, bfloat16 finite outputs.
    mixed = cls(**kwargs, dtype="mixed_bfloat16")
    if keras.backend.backend() == "jax":
        output = mixed.predict_on_batch(data)  # NumPy (ml_dtypes) bfloat16
        dtype = str(output.dtype)
    else:
        output = mixed(data)
        dtype = keras.backend.standardize_dtype(output.dtype)
        output = keras.ops.convert_to_numpy(keras.ops.cast(output, "float32"))
    test.assertEqual(dtype, "bfloat16")
    test.assertTrue(np.all(np.isfinite(np.asarray(output, "float32"))))
    for w in mixed.weights:
        test.assertEqual(keras.backend.standardize_dtype(w.dtype), "float32")


def assert_distinct_scopes(test, first, second):
    """Two encoders: distinct names, every variable path under the own name."""
    test.assertNotEqual(first.name, second.name)
    paths = [{v.path for v in e.weights} for e in (first, second)]
    test.assertFalse(paths[0] & paths[1], "the encoders share variable paths")
    for encoder, encoder_paths in zip((first, second), paths):
        test.assertEqual(len(encoder_paths), len(encoder.weights))
        for path in encoder_paths:
            test.assertTrue(path.startswith(encoder.name + "/"), path)


def assert_nested_round_trip(test, encoder_fn, data):
    """Two encoders nested in one functional model: call, config and `.keras`.

    `encoder_fn()` builds a fresh encoder; `data` is one input batch for it.
    """
    first, second = encoder_fn(), encoder_fn()
    assert_distinct_scopes(test, first, second)
    if isinstance(data, dict):
        inputs = {
            k: keras.Input(shape=v.shape[1:], dtype=str(v.dtype), name=k)
            for k, v in data.items()
        }
    else:
        inputs = keras.Input(shape=data.shape[1:], dtype=str(data.dtype))
    outputs = keras.layers.Concatenate()([first(inputs), second(inputs)])
    model = keras.Model(inputs, outputs)
    restored = test.run_model_saving_test(model, data)
    names = sorted(layer.name for layer in restored.layers)
    test.assertIn(first.name, names)
    test.assertIn(second.name, names)
    return model, restored
