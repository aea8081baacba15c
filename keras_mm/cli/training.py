"""`keras-mm train`: configuration, checkpoints each epoch, resume, NaN stop."""

import math
import os
import signal
import sys
import time
import warnings

import keras
import numpy as np

from keras_mm.cli.app import RunError
from keras_mm.cli.checkpoints import (
    MODEL,
    RUN_CONFIG,
    VOCABULARY,
    FollowerRunDir,
    RunDir,
    restore_rng_state,
)
from keras_mm.cli.data import SHAPES, TrainingBatches, load_dataset
from keras_mm.cli.families import (
    build_model,
    make_optimizer,
    prepare_model,
)
from keras_mm.cli.interrupt import StopOnInterrupt
from keras_mm.cli.parser import (
    EXIT_INTERRUPTED,
    EXIT_NAN,
    UsageError,
)
from keras_mm.cli.run_config import (  # noqa: F401  (re-exported)
    DEFAULTS,
    RESUMABLE,
    resolve_config,
)
from keras_mm.cli.run_inputs import adapt_dataset, run_inputs
from keras_mm.cli.streaming import STREAM, make_stream

# Test hook: "EPOCH:BATCH" (1-based) kills this process with SIGKILL after that
# training batch, to test `--resume` after a hard kill mid-epoch.
KILL_ENV = "KERAS_MM_TEST_KILL_AT"


# ------------------------------------------------------------------ callbacks
class NaNGuard(keras.callbacks.Callback):
    """Stop training at the first non-finite loss, or after an epoch without a
    step (data smaller than one batch), and remember where."""

    def __init__(self):
        super().__init__()
        self.epoch = self.steps = 0
        self.stopped_at = self.empty_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.steps = epoch + 1, 0

    def _check(self, logs, batch):
        loss = (logs or {}).get("loss")
        if loss is None or self.stopped_at is not None:
            return
        if not math.isfinite(float(np.asarray(loss))):
            self.stopped_at = (self.epoch, batch)
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        self._check(logs, batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        if self.steps == 0 and not self.model.stop_training:
            self.empty_epoch = epoch + 1
            self.model.stop_training = True
            return
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
        if self.guard.stopped_at is not None or self.guard.empty_epoch is not None:
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


class EpochOrder(keras.callbacks.Callback):
    """Give `TrainingBatches` the epoch number at each epoch start.

    Its order depends on the epoch, which it otherwise counts from its
    `on_epoch_begin` calls; under a `tf.distribute` strategy Keras makes one
    extra pass over the data before training (to build the model), which
    would shift the count by one.
    """

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


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
def _start(config, run, data, make, replace, initial=None, inputs=None):
    """A new compiled model, the run files written; returns `(model, 0, [])`.

    `make(model)` gives the optimizer. With `initial` (`--init`) the model is
    the loaded one and `inputs` its tokenizer, written into the run directory.
    With `replace` (`--overwrite`), the old run's files are deleted only now,
    after the data was read and the model built: a failed start keeps them.
    """
    if initial is not None:
        model = initial[0]
    else:
        keras.utils.set_random_seed(config["seed"])
        model = build_model(
            config,
            tuple(data["train"]["images"].shape[1:]),
            len(data["vocabulary"]),
            config["dataset"]["sequence_length"],
        )
    prepare_model(model, config)
    model.compile(optimizer=make(model))
    if not run.writable:  # process 0 writes the run files
        return model, 0, []
    if replace and run.exists():
        run.clear()
    os.makedirs(run.path, exist_ok=True)
    if inputs is not None:
        inputs.save(run)
    else:
        run.write_json(VOCABULARY, data["vocabulary"])
    run.write_json(RUN_CONFIG, config)
    return model, 0, []


def _stream_data(config, vocabulary, inputs=None):
    """The training stream and the layout `_start` / `_describe` read."""
    spec = config["dataset"]
    stream = make_stream(
        spec, "train", vocabulary, config["batch_size"], config["seed"], inputs=inputs
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
    if "init" in config:
        return (
            f"{config['family']} ({config['loss']} loss) fine-tuned from "
            f"{config['init']['path']} on {spec.get('format', spec['kind'])} "
            f"{spec.get('path', '')} at {spec['image_size']} px; backend "
            f"{keras.backend.backend()}, seed {config['seed']}"
        )
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


def _known_seed(args, run):
    """The run's seed before `resolve_config`: saved (`--resume`) or given."""
    if args.resume and run.exists():
        return int(run.config().get("seed", DEFAULTS["seed"]))
    return args.seed if args.seed is not None else DEFAULTS["seed"]


def train(args):
    """`keras-mm train`, on the devices and processes of `distributed.runtime()`.

    The model is built, compiled and fitted inside the runtime's scope
    (TensorFlow's strategy, JAX's `DataParallel`); only process 0 writes the
    run directory.
    """
    from keras_mm.cli.distributed import runtime as current_runtime

    runtime = current_runtime()
    run = RunDir(args.output) if runtime.chief else FollowerRunDir(args.output)
    keras.backend.clear_session()  # before the scope: it resets Keras' state
    with runtime.scope(), runtime.quiet():
        return _train(args, run, runtime)


def _train(args, run, runtime):
    from keras_mm.cli.initializing import load_init

    # Seeded before `--init` loads a tokenizer, never after: `tf.random.set_seed`
    # clears TensorFlow's kernel cache and with it the resource of a SentencePiece
    # tokenizer (SigLIP's), which the stream then fails to find (tensorflow/text#570).
    seed = _known_seed(args, run)
    keras.utils.set_random_seed(seed)
    config, initial = resolve_config(args, run, load_init)
    runtime.record(config)
    if config["family"] == "text-to-image":
        from keras_mm.cli.text_to_image import train_text_to_image

        return train_text_to_image(args, run, config)
    if config["seed"] != seed:
        keras.utils.set_random_seed(config["seed"])
    state = run.checkpoint_state() if args.resume else None
    if state is not None and config["epochs"] < state["epoch"]:
        raise UsageError(
            f"--epochs {config['epochs']} is fewer than the {state['epoch']} epochs "
            f"the run in {run.path!r} has already trained; pass --epochs "
            f"{state['epoch'] + 1} or more to train on"
        )
    inputs = None
    if "inputs" in config:  # --init: the model's own tokenizer and normalisation
        inputs = initial[1] if initial is not None else run_inputs(run, config)
        vocabulary = inputs.vocabulary
    else:
        vocabulary = run.read_json(VOCABULARY) if args.resume else None
    if config["dataset"]["kind"] == STREAM:
        data, batches = _stream_data(config, vocabulary, inputs)
    else:
        data = load_dataset(config["dataset"], vocabulary)
        if inputs is not None:
            data = adapt_dataset(data, inputs)
        batches = TrainingBatches(data["train"], config["batch_size"], config["seed"])
        runtime.check_batch(batches.batches.batch_size)
    print(f"keras-mm train: {_describe(config, data)}", flush=True)
    if runtime.describe():
        print(f"keras-mm train: {runtime.describe()}", flush=True)

    def make(model):
        return make_optimizer(config, len(batches), model)

    if state is not None:
        model = run.load_checkpoint(
            state, lambda model: make(prepare_model(model, config))
        )
        optimizer = model.optimizer
        if config["schedule"] == "constant":
            # The rate is then an optimizer variable, read back from the file.
            fresh = make(model)
            parts = getattr(optimizer, "optimizers", [optimizer])
            for part, new in zip(parts, getattr(fresh, "optimizers", [fresh])):
                part.learning_rate = float(
                    keras.ops.convert_to_numpy(new.learning_rate)
                )
        restore_rng_state(state["rng"])
        initial_epoch, history = state["epoch"], state["history"]
        print(f"Resuming after epoch {initial_epoch} of {config['epochs']}.")
    else:
        if args.resume:
            print("No checkpoint yet; starting the run from epoch 1.")
            if "init" in config:
                from keras_mm.cli.initializing import load_init

                initial = load_init(config["init"]["path"])
        model, initial_epoch, history = _start(
            config, run, data, make, args.overwrite, initial, inputs
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
        else:
            callbacks.insert(0, EpochOrder(batches))
        fit_data = runtime.process_data(fit_data, config["batch_size"])
        started = time.time()
        previous = interrupt.install()
        try:
            with runtime.fit_scope(model), warnings.catch_warnings():
                # A stream's length is unknown until its end: Keras warns there.
                warnings.filterwarnings("ignore", "Your input ran out of data")
                model.fit(
                    fit_data,
                    epochs=config["epochs"],
                    initial_epoch=initial_epoch,
                    callbacks=callbacks,
                    verbose=_verbosity(args.verbose) if runtime.chief else 0,
                    # The batches' order is a function of (seed, epoch); Keras'
                    # own shuffle of a PyDataset's batches draws from Python's
                    # global RNG, which a tf.distribute strategy's extra pass
                    # (to build the model) advances.
                    shuffle=False,
                )
        except Exception as error:  # a bad record inside tf.data: one line
            converted = getattr(batches, "value_error", lambda e: None)(error)
            if converted is not None:
                raise converted from None
            if not (guard.steps == 0 and isinstance(error, UnboundLocalError)):
                raise
            # Keras' JAX trainer fails on an epoch without a step (`logs` unset).
            guard.empty_epoch = guard.epoch
        finally:
            signal.signal(signal.SIGINT, previous)
        if guard.stopped_at is not None:
            raise RunError(_nan_message(run, guard.stopped_at), EXIT_NAN)
        if interrupt.requested:
            raise RunError(_interrupt_message(run, interrupt), EXIT_INTERRUPTED)
        if guard.empty_epoch is not None:
            raise UsageError(
                f"epoch {guard.empty_epoch} ran no training step: the training data "
                f"gave no complete batch of --batch-size {config['batch_size']} (an "
                "incomplete last batch is dropped); pass a smaller --batch-size"
            )
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
