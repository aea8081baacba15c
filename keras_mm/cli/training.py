"""`keras-mm train`: configuration, checkpoints each epoch, resume, NaN stop."""

import math
import os
import signal
import sys
import time

import keras
import numpy as np

from keras_mm.cli.app import RunError
from keras_mm.cli.checkpoints import (
    MODEL,
    RUN_CONFIG,
    VOCABULARY,
    RunDir,
    restore_rng_state,
)
from keras_mm.cli.data import SHAPES, TrainingBatches, detect_format, load_dataset
from keras_mm.cli.families import build_model, check_model_options, make_optimizer
from keras_mm.cli.interrupt import StopOnInterrupt
from keras_mm.cli.parser import (
    EXIT_INTERRUPTED,
    EXIT_NAN,
    UsageError,
    check_dir,
    check_file,
)
from keras_mm.cli.streaming import STREAM, make_stream, stream_format, stream_spec
from keras_mm.version import __version__

# Test hook: "EPOCH:BATCH" (1-based) kills this process with SIGKILL after that
# training batch, to test `--resume` after a hard kill mid-epoch.
KILL_ENV = "KERAS_MM_TEST_KILL_AT"

DEFAULTS = {
    "family": "clip",
    "loss": "clip",
    "image_encoder": "conv",
    "width": 64,
    "embed_dim": 64,
    "epochs": 5,
    "batch_size": 64,
    "learning_rate": 3e-3,
    "schedule": "cosine",
    "seed": 0,
}
SHAPES_DEFAULTS = {
    "image_size": 32,
    "sequence_length": 10,
    "train_samples": 4000,
    "test_samples": 1000,
}
FILE_DEFAULTS = {"image_size": 64, "sequence_length": 16, "test_fraction": 0.1}
SHAPES_ONLY = ("train_samples", "test_samples")
FILES_ONLY = (
    "format", "image_root", "max_images", "test_fraction", "skip_bad_records",
)  # fmt: skip
# Settings `--resume` may change: the epochs to reach, and the (peak) learning
# rate, e.g. to continue from the last good checkpoint after a NaN stop. The
# schedule is rebuilt from them; the restored step count continues it.
RESUMABLE = ("epochs", "learning_rate")


def _option(key):
    return "--" + key.replace("_", "-")


def _given(args, keys):
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def _dataset_spec(args):
    if args.dataset == SHAPES:
        for key in FILES_ONLY:
            if getattr(args, key) is not None:
                raise UsageError(
                    f"{_option(key)} applies to a dataset file, not shapes"
                )
        spec = {"kind": SHAPES, **SHAPES_DEFAULTS}
        spec.update(_given(args, ("image_size", "sequence_length", *SHAPES_ONLY)))
        if spec["image_size"] < 16:
            raise UsageError("--image-size must be >= 16 for shapes")
        return spec
    for key in SHAPES_ONLY:
        if getattr(args, key) is not None:
            raise UsageError(f"{_option(key)} applies to --dataset shapes only")
    fmt = stream_format(args.dataset, args.format)
    if fmt is not None:  # CSV/TSV, tar shards, class folders, VQA: streamed
        given = _given(args, ("image_size", "sequence_length", "test_fraction"))
        return stream_spec(args, fmt, given)
    path = check_file(args.dataset, "--dataset")
    if args.image_root is None:
        raise UsageError("--image-root is required with a dataset file")
    root = check_dir(args.image_root, "--image-root")
    fmt = args.format or "auto"
    spec = {
        "kind": "file",
        "path": os.path.abspath(path),
        "image_root": os.path.abspath(root),
        "format": detect_format(path) if fmt == "auto" else fmt,
        "max_images": args.max_images,
        **FILE_DEFAULTS,
    }
    spec.update(_given(args, ("image_size", "sequence_length", "test_fraction")))
    return spec


def _saved_value(config, key):
    """The saved setting an argument `key` must match on `--resume`."""
    spec = config["dataset"]
    if key == "dataset":
        return SHAPES if spec["kind"] == SHAPES else spec["path"]
    return spec.get(key) if key not in config else config[key]


def _check_unchanged(run, config, given):
    for key, value in given.items():
        if key in RESUMABLE or (key == "format" and value == "auto"):
            continue
        if key in ("dataset", "image_root") and value != SHAPES:
            value = os.path.abspath(value)
        saved = _saved_value(config, key)
        if saved != value:
            raise UsageError(
                f"--resume continues the run saved in {run.path!r} with its own "
                f"settings: {_option(key)} {value} differs from its {saved}"
            )


def resolve_config(args, run):
    """The run configuration: saved (`--resume`) or from arguments + defaults."""
    settings = tuple(DEFAULTS) + ("image_size", "sequence_length", "dataset")
    settings += SHAPES_ONLY + FILES_ONLY
    if os.path.exists(run.path) and not os.path.isdir(run.path):
        raise UsageError(f"--output {run.path!r} is a file, not a run directory")
    if args.resume:
        if not run.exists():
            raise UsageError(
                f"nothing to resume: {run.path!r} has no {RUN_CONFIG} (start the "
                "run without --resume)"
            )
        config = run.config()
        _check_unchanged(run, config, _given(args, settings))
        for key in RESUMABLE:
            if getattr(args, key) is not None:
                config[key] = getattr(args, key)
        config["backend"] = keras.backend.backend()  # the one this part runs on
        return config
    if run.exists() and not args.overwrite:
        raise UsageError(
            f"{run.path!r} already holds a run; pass --resume to continue it or "
            "--overwrite to replace it"
        )
    if args.dataset is None:
        raise UsageError("the following arguments are required: --dataset")
    config = {"keras_mm_version": __version__, **DEFAULTS}
    given = _given(args, tuple(DEFAULTS) + ("tokenizer_epochs",))
    if given.get("family") == "text-to-image":
        from keras_mm.cli.text_to_image import FAMILY_DEFAULTS

        config.update(FAMILY_DEFAULTS)
    elif "tokenizer_epochs" in given:
        raise UsageError("--tokenizer-epochs applies to --family text-to-image only")
    config.update(given)
    config["dataset"] = _dataset_spec(args)
    config["dataset"]["split_seed"] = config["seed"]
    config["backend"] = keras.backend.backend()
    check_model_options(config)
    return config


# ------------------------------------------------------------------ callbacks
class NaNGuard(keras.callbacks.Callback):
    """Stop training at the first non-finite loss and remember where."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.stopped_at = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def _check(self, logs, batch):
        loss = (logs or {}).get("loss")
        if loss is None or self.stopped_at is not None:
            return
        if not math.isfinite(float(np.asarray(loss))):
            self.stopped_at = (self.epoch, batch)
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, None)


class EpochCheckpoint(keras.callbacks.Callback):
    """Commit a checkpoint after every epoch whose loss stayed finite."""

    def __init__(self, run, guard, history, interrupt=None):
        super().__init__()
        self.run, self.guard, self.history = run, guard, history
        self.interrupt = interrupt
        self.started = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.stopped_at is not None:
            return  # keep the last good checkpoint
        if self.interrupt is not None and self.interrupt.cut_short():
            return  # an epoch stopped by Ctrl-C is not a finished epoch
        if not _all_finite(self.model.trainable_variables):
            # The last update of the epoch diverged after its loss was logged.
            self.guard.stopped_at = (epoch + 1, None)
            self.model.stop_training = True
            return
        loss = float(np.asarray((logs or {}).get("loss", float("nan"))))
        self.history.append(
            {
                "epoch": epoch + 1,
                "loss": loss,
                "seconds": round(time.time() - self.started, 2),
            }
        )
        self.run.save_checkpoint(self.model, epoch + 1, self.history)


def _all_finite(variables):
    return all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in variables)


class KillHook(keras.callbacks.Callback):
    """Test hook: SIGKILL this process after a given training batch."""

    def __init__(self, at):
        super().__init__()
        epoch, _, batch = at.partition(":")
        self.at = (int(epoch), int(batch or 1))
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch + 1) == self.at:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)


# ----------------------------------------------------------------------- train
def _start(config, run, data, optimizer, replace):
    """A new compiled model, the run files written; returns `(model, 0, [])`.

    With `replace` (`--overwrite`), the old run's files are deleted only now,
    after the data was read and the model built: a failed start keeps them.
    """
    keras.utils.set_random_seed(config["seed"])
    model = build_model(
        config,
        tuple(data["train"]["images"].shape[1:]),
        len(data["vocabulary"]),
        config["dataset"]["sequence_length"],
    )
    model.compile(optimizer=optimizer)
    if replace and run.exists():
        run.clear()
    os.makedirs(run.path, exist_ok=True)
    run.write_json(VOCABULARY, data["vocabulary"])
    run.write_json(RUN_CONFIG, config)
    return model, 0, []


def _stream_data(config, vocabulary):
    """The training stream and the layout `_start` / `_describe` read."""
    spec = config["dataset"]
    stream = make_stream(
        spec, "train", vocabulary, config["batch_size"], config["seed"]
    )
    size = spec["image_size"]
    data = {
        "train": {"images": np.zeros((0, size, size, 3)), "token_ids": ()},
        "test": {"images": ()},
        "vocabulary": stream.vocabulary,
    }
    return data, stream


def _describe(config, data):
    spec = config["dataset"]
    if spec["kind"] == STREAM:
        return (
            f"{config['family']} ({config['loss']} loss) streaming {spec['format']} "
            f"{spec['path']} at {spec['image_size']} px; backend "
            f"{keras.backend.backend()}, seed {config['seed']}"
        )
    name = "shapes" if spec["kind"] == SHAPES else f"{spec['format']} {spec['path']}"
    train, test = data["train"], data["test"]
    return (
        f"{config['family']} ({config['loss']} loss, {config['image_encoder']} "
        f"image encoder) on {name}: {len(train['images'])} train images / "
        f"{len(train['token_ids'])} captions, {len(test['images'])} test images; "
        f"backend {keras.backend.backend()}, seed {config['seed']}"
    )


def train(args):
    run = RunDir(args.output)
    config = resolve_config(args, run)
    if config["family"] == "text-to-image":
        from keras_mm.cli.text_to_image import train_text_to_image

        keras.backend.clear_session()
        return train_text_to_image(args, run, config)
    keras.backend.clear_session()
    keras.utils.set_random_seed(config["seed"])
    state = run.checkpoint_state() if args.resume else None
    if state is not None and config["epochs"] < state["epoch"]:
        raise UsageError(
            f"--epochs {config['epochs']} is fewer than the {state['epoch']} epochs "
            f"the run in {run.path!r} has already trained; pass --epochs "
            f"{state['epoch'] + 1} or more to train on"
        )
    vocabulary = run.read_json(VOCABULARY) if args.resume else None
    if config["dataset"]["kind"] == STREAM:
        data, batches = _stream_data(config, vocabulary)
    else:
        data = load_dataset(config["dataset"], vocabulary)
        batches = TrainingBatches(data["train"], config["batch_size"], config["seed"])
    print(f"keras-mm train: {_describe(config, data)}", flush=True)
    optimizer = make_optimizer(config, len(batches))
    if state is not None:
        model = run.load_checkpoint(state, optimizer)
        if config["schedule"] == "constant":
            # The rate is then an optimizer variable, read back from the file.
            optimizer.learning_rate = config["learning_rate"]
        restore_rng_state(state["rng"])
        initial_epoch, history = state["epoch"], state["history"]
        print(f"Resuming after epoch {initial_epoch} of {config['epochs']}.")
    else:
        if args.resume:
            print("No checkpoint yet; starting the run from epoch 1.")
        model, initial_epoch, history = _start(
            config, run, data, optimizer, replace=args.overwrite
        )
    if args.resume:
        run.write_json(RUN_CONFIG, config)  # records a changed --epochs / rate
    if initial_epoch < config["epochs"]:
        batches.set_epoch(initial_epoch)
        guard = NaNGuard()
        interrupt = StopOnInterrupt(len(batches))
        callbacks = [guard, interrupt, EpochCheckpoint(run, guard, history, interrupt)]
        if os.environ.get(KILL_ENV):
            callbacks.append(KillHook(os.environ[KILL_ENV]))
        fit_data = batches
        if config["dataset"]["kind"] == STREAM:  # tf.data; epochs kept in step
            callbacks.insert(0, batches.callback())
            fit_data = batches.dataset
        started = time.time()
        previous = interrupt.install()
        try:
            model.fit(
                fit_data,
                epochs=config["epochs"],
                initial_epoch=initial_epoch,
                callbacks=callbacks,
                verbose=_verbosity(args.verbose),
            )
        except Exception as error:  # a bad record inside tf.data: one line
            converted = getattr(batches, "value_error", lambda e: None)(error)
            if converted is None:
                raise
            raise converted from None
        finally:
            signal.signal(signal.SIGINT, previous)
        if guard.stopped_at is not None:
            raise RunError(_nan_message(run, guard.stopped_at), EXIT_NAN)
        if interrupt.requested:
            raise RunError(_interrupt_message(run, interrupt), EXIT_INTERRUPTED)
        seconds = time.time() - started
        print(
            f"Trained epochs {initial_epoch + 1}-{config['epochs']} in "
            f"{seconds:.1f} s; final loss {history[-1]['loss']:.4f}."
        )
    else:
        print(f"Already trained {initial_epoch} epochs; nothing to do.")
    run.save_model(model, MODEL, include_optimizer=False)
    print(f"Saved {run.file(MODEL)}")
    return 0


def _verbosity(verbose):
    """Progress bars on a terminal; one line per epoch in logs and pipes."""
    if verbose is not None:
        return verbose
    return 1 if getattr(sys.stdout, "isatty", lambda: False)() else 2


def _interrupt_message(run, interrupt):
    state = run.checkpoint_state()
    resume = f"`keras-mm train --output {run.path} --resume`"
    if state is None:
        kept = f"no epoch finished, so there is no checkpoint; {resume} starts over"
    else:
        kept = (
            f"the checkpoint of epoch {state['epoch']} is committed in "
            f"{run.file(state['file'])}; {resume} continues from it"
        )
    return (
        f"interrupted (Ctrl-C) in epoch {interrupt.epoch} after batch "
        f"{interrupt.batch}; {kept}"
    )


def _nan_message(run, stopped_at):
    epoch, batch = stopped_at
    where = f"epoch {epoch}" + (f", batch {batch}" if batch else "")
    state = run.checkpoint_state()
    if state is None:
        kept = (
            "no epoch finished, so no checkpoint was written. Start again with a "
            "lower --learning-rate and --overwrite"
        )
    else:
        kept = (
            f"the last good checkpoint (epoch {state['epoch']}) is kept in "
            f"{run.file(state['file'])}. Continue from it with a lower rate "
            "(--resume --learning-rate ...) or start again with --overwrite"
        )
    return f"the loss became NaN or infinite at {where}; training stopped and {kept}"
