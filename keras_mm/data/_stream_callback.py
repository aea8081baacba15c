"""Private: the Keras callback of `ImageTextDataset` (epochs, bad-record counts)."""

import keras


class StreamEpochCallback(keras.callbacks.Callback):
    """Sets the stream's epoch at each epoch start; reports bad records at its end.

    The count of the epoch's skipped records goes into `logs["bad_records"]`
    (so into `History`), and is printed with the reasons when `verbose`.
    """

    def __init__(self, stream, verbose=True):
        super().__init__()
        self.stream, self.verbose = stream, verbose
        self.history = []

    def on_epoch_begin(self, epoch, logs=None):
        stream = self.stream
        if not (stream._pinned and stream._epoch == epoch):  # keep a resume point
            stream.set_epoch(epoch)

    def on_epoch_end(self, epoch, logs=None):
        counts = self.stream.bad_records
        total = sum(counts.values())
        self.history.append(counts)
        if logs is not None:
            logs["bad_records"] = total
        if total and self.verbose:
            detail = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
            print(f"Epoch {epoch + 1}: skipped {total} bad records ({detail}).")
