"""Private: batched model encoding, and the base of the metric callbacks.

`encode` calls a model's `encode_image` / `encode_text` a batch at a time;
`EvaluationCallback` scores those embeddings into `logs` during `fit`.
"""

import inspect

import keras
import numpy as np
from keras import ops

from keras_mm.metrics._utils import check_ks


def _take(x, start, stop):
    if isinstance(x, dict):
        return {k: v[start:stop] for k, v in x.items()}
    return x[start:stop]


def _length(x):
    if isinstance(x, dict):
        return len(next(iter(x.values())))
    return len(x)


def _takes_batch_size(fn):
    try:
        return "batch_size" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def encode(fn, inputs, batch_size):
    """Embed `inputs` (array or dict) with `fn`, `batch_size` rows at a time.

    A method with a `batch_size` argument (e.g. one that calls `predict`) gets the
    whole input once and batches itself; otherwise `fn` is called on slices.
    """
    if _takes_batch_size(fn):
        out = fn(inputs, batch_size=batch_size)
        return np.asarray(ops.convert_to_numpy(out), dtype="float32")
    n = _length(inputs)
    chunks = []
    for start in range(0, n, batch_size):
        out = fn(_take(inputs, start, start + batch_size))
        chunks.append(np.asarray(ops.convert_to_numpy(out), dtype="float32"))
    return np.concatenate(chunks, axis=0)


def check_text_inputs(text, arg):
    """Text inputs: a dict of arrays with "token_ids", or a token id array."""
    if isinstance(text, dict):
        if "token_ids" not in text:
            raise ValueError(
                f"`{arg}` must hold a 'token_ids' entry. Received keys: {sorted(text)}"
            )
        text = {k: np.asarray(v) for k, v in text.items() if k != "prompts"}
        shape = text["token_ids"].shape
        for k, v in text.items():
            if v.shape != shape:
                raise ValueError(
                    f"Every array in `{arg}` must have the shape of 'token_ids' "
                    f"{shape}. Received: {k!r} shape={v.shape}"
                )
        return text, shape
    text = np.asarray(text)
    return text, text.shape


def reshape_text(text, shape):
    if isinstance(text, dict):
        return {k: v.reshape(shape) for k, v in text.items()}
    return text.reshape(shape)


class EvaluationCallback(keras.callbacks.Callback):
    """Base of the metric callbacks: `evaluate()` into `logs` every `frequency` epochs.

    A subclass checks its data, calls `set_schedule` and defines `evaluate()`,
    which returns the dict of metrics (keys starting with `self.prefix`).
    """

    def set_schedule(self, ks, batch_size, frequency, prefix):
        """Check and store the arguments every metric callback takes."""
        self.ks = check_ks(ks)
        for arg, value in (("batch_size", batch_size), ("frequency", frequency)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"`{arg}` must be a positive integer. Received: {value!r}"
                )
        self.batch_size = batch_size
        self.frequency = frequency
        self.prefix = prefix

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.frequency:
            return
        results = self.evaluate()
        if logs is not None:
            logs.update(results)
