"""Ctrl-C landing inside a training step (`keras_mm.cli.interrupt`)."""

import signal

import keras
import numpy as np

from keras_mm.cli.interrupt import StopOnInterrupt


def test_ctrl_c_right_after_a_step_is_dispatched_stops_cleanly():
    """The signal may land after a step was dispatched (on JAX: its state
    donated, the buffers deleted) and before Keras keeps the new state. The
    handler must only set `stop_training`: syncing the model there put deleted
    buffers back into the variables, and `fit` failed at the end of the epoch
    with "Buffer has been deleted or donated" (seen in CI, 1 run in ~25)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    x, y = np.ones((16, 3), "float32"), np.zeros((16, 2), "float32")
    interrupt = StopOnInterrupt(steps_per_epoch=4)

    class SignalInsideStep(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch != 1:
                return
            step = model.train_function

            def step_then_signal(*args):
                outputs = step(*args)
                interrupt._handle(signal.SIGINT, None)
                model.train_function = step
                return outputs

            model.train_function = step_then_signal

    previous = interrupt.install()
    try:
        model.fit(
            x, y, batch_size=4, epochs=3, verbose=0,
            callbacks=[interrupt, SignalInsideStep()],
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    assert interrupt.requested and (interrupt.epoch, interrupt.batch) == (1, 2)
    assert interrupt.cut_short()
    for weight in model.weights:
        assert np.isfinite(keras.ops.convert_to_numpy(weight)).all()
    assert model.predict(x, verbose=0).shape == (16, 2)
