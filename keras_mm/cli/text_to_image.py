"""`keras-mm train --family text-to-image`: tokenizer stage, then transformer stage.

```
RUN/run.json, RUN/vocabulary.json        as for every family
RUN/tokenizer/checkpoint.json, checkpoints/, model.keras   stage 1 (ImageTokenizer)
RUN/transformer/checkpoint.json, checkpoints/              stage 2 (TextToImage)
RUN/model.keras                          the trained TextToImage (tokenizer inside)
```

Each stage checkpoints every epoch in its own `RunDir`, so `--resume` continues
the stage that was running (a finished stage 1 is kept and not retrained).
"""

import os
import signal
import time

import keras
import numpy as np

from keras_mm.cli.checkpoints import (
    MODEL,
    RUN_CONFIG,
    VOCABULARY,
    RunDir,
    restore_rng_state,
)
from keras_mm.cli.data import SHAPES, SHAPES_DATA_SEED
from keras_mm.cli.families import make_optimizer
from keras_mm.cli.parser import EXIT_INTERRUPTED, EXIT_NAN, UsageError
from keras_mm.data import load_shapes
from keras_mm.data.multimodal_py_dataset import MultimodalPyDataset
from keras_mm.models import ImageTokenizer, TextToImage

FAMILY = "text-to-image"
TOKENIZER_DIR = "tokenizer"
TRANSFORMER_DIR = "transformer"
# Family defaults, chosen by the quality measurements of benchmarks/RESULTS.md
# ("Text-to-image quality"). Measured on 2 idle cores, the whole default run
# takes 7 min 37 s on JAX, 6 min 56 s on TensorFlow and 5 min 48 s on torch
# (`--width` sets the transformer width).
FAMILY_DEFAULTS = {
    "epochs": 12,
    "tokenizer_epochs": 12,
    "learning_rate": 2e-3,
    "batch_size": 64,
    "width": 128,
}
# With 4,000 images the transformer's image-token loss ended at 1.76 nats and
# 44% of samples were recognised; with 8,000 (and the same epochs) 1.36 and 83%.
FAMILY_DATASET_DEFAULTS = {"train_samples": 8000}
NUM_CODES = 512  # 128 codes kept the class in 76-91% of reconstructions, 512 in 98%
CODE_DIM = 16
TOKENIZER_WIDTH = 32
TRANSFORMER_LAYERS = 3
PROMPT_DROPOUT = 0.1  # the empty prompt, for classifier-free guidance
# `keras-mm generate` defaults for runs trained with prompt dropout: measured
# 94% of samples recognised, against 83% with plain sampling.
DEFAULT_GUIDANCE_SCALE = 2.0
DEFAULT_TOP_P = 0.9


def check_options(config):
    if config["dataset"]["kind"] != SHAPES:
        raise UsageError(
            "--family text-to-image trains on --dataset shapes (its class "
            "prompts are what `keras-mm generate` and the quality benchmark use)"
        )
    size = config["dataset"]["image_size"]
    if size % 4:
        raise UsageError(
            f"--image-size {size} must be a multiple of 4 with --family "
            "text-to-image (the tokenizer halves the image twice)"
        )


def load_data(spec):
    """Every one of the 24 shapes classes (none held out) and the vocabulary."""
    data = load_shapes(
        num_train=spec["train_samples"],
        num_test=spec["test_samples"],
        num_compositional=0,
        image_size=spec["image_size"],
        sequence_length=spec["sequence_length"],
        held_out=[],
        seed=SHAPES_DATA_SEED,
    )
    return data


def build_tokenizer(config):
    size = config["dataset"]["image_size"]
    return ImageTokenizer(
        (size, size, 3),
        num_codes=NUM_CODES,
        code_dim=CODE_DIM,
        hidden_dim=min(TOKENIZER_WIDTH, config["width"]),
        num_downsamples=2,
        name="image_tokenizer",
    )


def build_transformer(config, tokenizer, vocabulary):
    return TextToImage(
        tokenizer,
        vocabulary,
        text_length=config["dataset"]["sequence_length"],
        hidden_dim=config["width"],
        num_layers=TRANSFORMER_LAYERS,
        num_heads=4 if config["width"] % 4 == 0 else 1,
        prompt_dropout=PROMPT_DROPOUT,
        name="text_to_image",
    )


def _fit_stage(args, stage, stage_config, build, inputs, label):
    """Train one stage to `stage_config["epochs"]`, checkpointing each epoch."""
    from keras_mm.cli.app import RunError
    from keras_mm.cli.interrupt import StopOnInterrupt
    from keras_mm.cli.training import (
        KILL_ENV,
        EpochCheckpoint,
        KillHook,
        NaNGuard,
        _interrupt_message,
        _nan_message,
        _verbosity,
    )

    batches = MultimodalPyDataset(
        inputs,
        batch_size=min(stage_config["batch_size"], len(next(iter(inputs.values())))),
        seed=stage_config["seed"],
        drop_remainder=True,
    )
    optimizer = make_optimizer(stage_config, len(batches))
    state = stage.checkpoint_state() if args.resume else None
    if state is not None:
        model = stage.load_checkpoint(state, optimizer)
        restore_rng_state(state["rng"])
        initial_epoch, history = state["epoch"], state["history"]
        print(f"Resuming the {label} after epoch {initial_epoch}.")
    else:
        keras.utils.set_random_seed(stage_config["seed"])
        model = build()
        model.compile(optimizer=optimizer)
        initial_epoch, history = 0, []
    epochs = stage_config["epochs"]
    if initial_epoch < epochs:
        batches.set_epoch(initial_epoch)
        guard = NaNGuard()
        interrupt = StopOnInterrupt(len(batches))
        callbacks = [
            guard,
            interrupt,
            EpochCheckpoint(stage, guard, history, interrupt),
        ]
        if os.environ.get(KILL_ENV):
            callbacks.append(KillHook(os.environ[KILL_ENV]))
        started = time.time()
        previous = interrupt.install()
        try:
            model.fit(
                batches,
                epochs=epochs,
                initial_epoch=initial_epoch,
                callbacks=callbacks,
                verbose=_verbosity(args.verbose),
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        if guard.stopped_at is not None:
            raise RunError(_nan_message(stage, guard.stopped_at), EXIT_NAN)
        if interrupt.requested:
            raise RunError(_interrupt_message(stage, interrupt), EXIT_INTERRUPTED)
        print(
            f"Trained the {label}: epochs {initial_epoch + 1}-{epochs} in "
            f"{time.time() - started:.1f} s; final loss {history[-1]['loss']:.4f}."
        )
    return model


def train_text_to_image(args, run, config):
    check_options(config)
    spec = config["dataset"]
    data = load_data(spec)
    train = data["train"]
    vocabulary = data["vocabulary"]
    if not args.resume or not run.exists():
        if args.overwrite and run.exists():
            run.clear()
        os.makedirs(run.path, exist_ok=True)
        run.write_json(VOCABULARY, vocabulary)
    run.write_json(RUN_CONFIG, config)
    print(
        f"keras-mm train: text-to-image on shapes: {len(train['labels'])} train "
        f"images ({spec['image_size']} px, 24 classes); backend "
        f"{keras.backend.backend()}, seed {config['seed']}",
        flush=True,
    )
    # Stage 1: the image tokenizer.
    stage1 = RunDir(run.file(TOKENIZER_DIR))
    if os.path.isfile(stage1.file(MODEL)):
        print("Stage 1 (image tokenizer) already trained.")
        tokenizer = keras.saving.load_model(stage1.file(MODEL), compile=False)
    else:
        tokenizer_config = {**config, "epochs": config["tokenizer_epochs"]}
        tokenizer = _fit_stage(
            args,
            stage1,
            tokenizer_config,
            lambda: build_tokenizer(config),
            {"images": train["inputs"]["images"]},
            "image tokenizer (stage 1)",
        )
        stage1.save_model(tokenizer, MODEL, include_optimizer=False)
        tokenizer = keras.saving.load_model(stage1.file(MODEL), compile=False)
    codes = tokenizer.encode(train["inputs"]["images"])
    used = len(np.unique(codes))
    print(f"Tokenizer: {used} of {tokenizer.num_codes} codes in use.")
    # Stage 2: the transformer on the frozen tokenizer's codes.
    stage2 = RunDir(run.file(TRANSFORMER_DIR))
    model = _fit_stage(
        args,
        stage2,
        config,
        lambda: build_transformer(config, tokenizer, vocabulary),
        {"token_ids": train["inputs"]["token_ids"], "image_codes": codes},
        "transformer (stage 2)",
    )
    run.save_model(model, MODEL, include_optimizer=False)
    print(f"Saved {run.file(MODEL)}")
    return 0
