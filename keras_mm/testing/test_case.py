"""The small shared TestCase used by keras_mm's tests.

`run_layer_test` checks what every layer must do: config round trip, symbolic
call, eager call (shape, dtype, weight counts), one `fit` step that changes the
weights, and the `mixed_bfloat16` policy. `run_model_saving_test` checks the
`.keras` round trip. Neither imports TensorFlow, so they run under every backend.
"""

import os
import tempfile
import unittest

import keras
import numpy as np
from keras import ops


def _to_numpy(x):
    return keras.tree.map_structure(ops.convert_to_numpy, x)


def _symbolic(x):
    def spec(t, name=None):
        return keras.Input(shape=tuple(t.shape[1:]), dtype=str(t.dtype), name=name)

    if isinstance(x, dict):
        return {k: spec(v, name=k) for k, v in x.items()}
    return keras.tree.map_structure(spec, x)


def _call(layer, data, call_kwargs):
    if isinstance(data, dict):
        return layer(**data, **call_kwargs)
    return layer(data, **call_kwargs)


class TestCase(unittest.TestCase):
    """unittest/pytest TestCase with keras_mm's shared layer and model checks."""

    def setUp(self):
        super().setUp()
        keras.config.disable_traceback_filtering()
        keras.utils.set_random_seed(1337)
        keras.config.set_dtype_policy("float32")

    def tearDown(self):
        keras.config.set_dtype_policy("float32")
        super().tearDown()

    def get_temp_dir(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        return tmp.name

    def assertAllClose(self, actual, desired, atol=1e-6, rtol=1e-6, msg=None):
        actual = _to_numpy(actual)
        desired = _to_numpy(desired)
        keras.tree.map_structure(
            lambda a, d: np.testing.assert_allclose(
                np.asarray(a, dtype="float64"),
                np.asarray(d, dtype="float64"),
                atol=atol,
                rtol=rtol,
                err_msg=msg or "",
            ),
            actual,
            desired,
        )

    def run_layer_test(
        self,
        layer_cls,
        init_kwargs,
        input_data,
        expected_output_shape,
        expected_output_dtype="float32",
        expected_num_trainable_weights=None,
        expected_num_non_trainable_weights=0,
        call_kwargs=None,
        run_training_check=True,
        run_mixed_precision_check=True,
    ):
        """Run the checks every keras_mm layer must pass.

        Args:
            layer_cls: the layer class.
            init_kwargs: dict of constructor arguments.
            input_data: the first call argument (a tensor or a list of tensors),
                or a dict of keyword call arguments (`{"query": q, "context": c}`).
            expected_output_shape: shape tuple (or a structure of them).
            expected_output_dtype: dtype name of the (first) output.
            expected_num_trainable_weights: int or None to skip.
            expected_num_non_trainable_weights: int.
            call_kwargs: extra keyword arguments for the call.
            run_training_check: whether to run one `fit` step.
            run_mixed_precision_check: whether to check `mixed_bfloat16`.
        """
        call_kwargs = dict(call_kwargs or {})
        input_data = keras.tree.map_structure(np.asarray, input_data)

        # 1. Config round trip, direct and through Keras serialization.
        layer = layer_cls(**init_kwargs)
        config = layer.get_config()
        revived = layer_cls.from_config(config)
        self.assertEqual(revived.get_config(), config)
        serialized = keras.saving.serialize_keras_object(layer)
        self.assertTrue(serialized["registered_name"].startswith("keras_mm>"))
        revived = keras.saving.deserialize_keras_object(serialized)
        self.assertIsInstance(revived, layer_cls)
        self.assertEqual(revived.get_config(), config)

        # 2. Symbolic call.
        layer = layer_cls(**init_kwargs)
        symbolic_inputs = _symbolic(input_data)
        symbolic_output = _call(layer, symbolic_inputs, call_kwargs)
        first = keras.tree.flatten(symbolic_output)[0]
        expected_first = (
            expected_output_shape
            if isinstance(expected_output_shape[0], (int, type(None)))
            else expected_output_shape[0]
        )
        self.assertEqual(tuple(first.shape[1:]), tuple(expected_first[1:]))

        # 3. Eager call: shapes, dtype, weight counts.
        layer = layer_cls(**init_kwargs)
        output = _call(layer, input_data, call_kwargs)
        shapes = keras.tree.map_structure(lambda t: tuple(t.shape), output)
        if isinstance(output, (list, tuple)):
            self.assertEqual(list(shapes), [tuple(s) for s in expected_output_shape])
        else:
            self.assertEqual(shapes, tuple(expected_output_shape))
        first = keras.tree.flatten(output)[0]
        self.assertEqual(
            keras.backend.standardize_dtype(first.dtype), expected_output_dtype
        )
        if expected_num_trainable_weights is not None:
            self.assertLen(layer.trainable_weights, expected_num_trainable_weights)
        self.assertLen(layer.non_trainable_weights, expected_num_non_trainable_weights)
        if hasattr(layer, "compute_output_shape") and not isinstance(output, tuple):
            try:
                computed = layer.compute_output_shape(
                    keras.tree.map_structure(lambda t: tuple(t.shape), input_data)
                    if not isinstance(input_data, dict)
                    else None
                )
            except TypeError:
                computed = None
            if computed is not None:
                self.assertEqual(tuple(computed), tuple(expected_output_shape))

        # 4. One fit step changes the weights.
        if run_training_check and layer.trainable_weights:
            self._run_training_step(layer_cls, init_kwargs, input_data, call_kwargs)

        # 5. mixed_bfloat16: float32 weights, bfloat16 outputs.
        if run_mixed_precision_check:
            layer = layer_cls(**init_kwargs, dtype="mixed_bfloat16")
            output = _call(layer, input_data, call_kwargs)
            first = keras.tree.flatten(output)[0]
            self.assertEqual(keras.backend.standardize_dtype(first.dtype), "bfloat16")
            for w in layer.weights:
                self.assertEqual(keras.backend.standardize_dtype(w.dtype), "float32")
            self.assertTrue(
                np.all(np.isfinite(ops.convert_to_numpy(ops.cast(first, "float32"))))
            )

    def assertLen(self, container, expected):
        self.assertEqual(len(container), expected)

    def _run_training_step(self, layer_cls, init_kwargs, input_data, call_kwargs):
        layer = layer_cls(**init_kwargs)
        symbolic_inputs = _symbolic(input_data)
        outputs = _call(layer, symbolic_inputs, call_kwargs)
        outputs = keras.tree.flatten(outputs)[0]
        model = keras.Model(symbolic_inputs, outputs)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        before = [np.array(ops.convert_to_numpy(w)) for w in layer.trainable_weights]
        batch = keras.tree.flatten(input_data)[0].shape[0]
        rng = np.random.default_rng(0)
        target = rng.normal(size=(batch,) + tuple(outputs.shape[1:])).astype("float32")
        model.fit(input_data, target, batch_size=batch, epochs=1, verbose=0)
        after = [ops.convert_to_numpy(w) for w in layer.trainable_weights]
        changed = [not np.allclose(b, a) for b, a in zip(before, after)]
        self.assertTrue(any(changed), "one fit step did not change any weight")

    def run_model_saving_test(self, model, input_data, atol=1e-6, rtol=1e-6):
        """Save `model` as `.keras`, load it back, compare outputs on `input_data`."""
        path = os.path.join(self.get_temp_dir(), "model.keras")
        expected = model.predict(input_data, verbose=0)
        model.save(path)
        restored = keras.saving.load_model(path)
        actual = restored.predict(input_data, verbose=0)
        self.assertAllClose(actual, expected, atol=atol, rtol=rtol)
        return restored
