"""Ctrl-C during `keras-mm train`: stop after the step, on every backend."""

import signal

import keras


class StopOnInterrupt(keras.callbacks.Callback):
    """Ctrl-C (SIGINT) stops training after the current step, on every backend.

    The handler only sets `model.stop_training`, which `fit` checks after each
    step: no `KeyboardInterrupt` is raised inside a step, where a backend could
    swallow it (Keras' JAX path catches it in a bare `except`). A second Ctrl-C
    raises `KeyboardInterrupt` at once. `install()` returns the handler to
    put back.
    """

    def __init__(self, steps_per_epoch):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.requested = False
        self.epoch = self.batch = 0

    def install(self):
        return signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        self.requested = True
        # `_model`, not the `model` property: on JAX the property syncs the
        # trainer's state into the variables, and a signal can land just after
        # a step donated that state (its buffers deleted); `fit` would then
        # read deleted buffers at the end of the epoch.
        if self._model is not None:
            self._model.stop_training = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.batch = epoch + 1, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batch = batch + 1

    def cut_short(self):
        """Whether Ctrl-C stopped the current epoch before its last step."""
        return self.requested and self.batch < self.steps_per_epoch
