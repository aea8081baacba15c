"""The configuration of a `keras-mm train` run: defaults, `--resume`, `--init`."""

import os

import keras

from keras_mm.cli.checkpoints import RUN_CONFIG
from keras_mm.cli.data import SHAPES, detect_format
from keras_mm.cli.families import check_model_options
from keras_mm.cli.parser import UsageError, check_dir, check_file
from keras_mm.cli.streaming import stream_format, stream_spec
from keras_mm.version import __version__

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
# Fine-tuning settings (also for from-scratch runs); absent in older run.json.
TUNING_DEFAULTS = {
    "lock_image": False,
    "image_lr_multiplier": 1.0,
    "text_lr_multiplier": 1.0,
    "tile_size": None,
}
# Settings that the --init model fixes.
MODEL_SETTINGS = ("width", "embed_dim", "image_encoder")
SHAPES_DEFAULTS = {
    "image_size": 32,
    "sequence_length": 10,
    "train_samples": 4000,
    "test_samples": 1000,
    # Half the training shapes in gray (with the attribute positives of
    # `TrainingBatches`): held-out colour x shape combinations 55% -> 82%
    # zero-shot, mean over training seeds (docs/concepts.md).
    "gray_shapes": 0.5,
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


def _init_settings(args, config, initial):
    """Take the model settings of an `--init` model into `config`."""
    model, inputs, entry = initial
    for key in MODEL_SETTINGS:
        if getattr(args, key, None) is not None:
            raise UsageError(
                f"{_option(key)} does not apply with --init (the model comes from "
                f"{args.init!r})"
            )
        config.pop(key, None)
    if args.loss is not None and args.loss != model.loss_name:
        raise UsageError(
            f"--loss {args.loss} differs from the --init model's loss "
            f"{model.loss_name!r}"
        )
    config["loss"] = model.loss_name
    spec = config["dataset"]
    for key in ("image_size", "sequence_length"):
        wanted = getattr(inputs, key)
        given = getattr(args, key, None)
        if given is not None and given != wanted:
            raise UsageError(
                f"{_option(key)} {given} differs from the --init model's {wanted}"
            )
        spec[key] = wanted
    config["init"] = entry
    config["inputs"] = inputs.describe()


def resolve_config(args, run, load_init=None):
    """The run configuration: saved (`--resume`) or from arguments + defaults.

    With `--init`, `load_init(path)` gives `(model, inputs, entry)`; returns
    `(config, initial)` where `initial` is that triple or None.
    """
    settings = tuple(DEFAULTS) + ("image_size", "sequence_length", "dataset")
    settings += tuple(TUNING_DEFAULTS) + ("init",)
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
        if args.init is not None and config.get("init", {}).get("path") not in (
            args.init,
            os.path.abspath(os.path.expanduser(args.init)),
        ):
            raise UsageError(
                f"--resume continues the run saved in {run.path!r}: --init "
                f"{args.init} differs from its {config.get('init', {}).get('path')}"
            )
        given = _given(args, settings)
        given.pop("init", None)
        _check_unchanged(run, config, given)
        for key in RESUMABLE:
            if getattr(args, key) is not None:
                config[key] = getattr(args, key)
        config["backend"] = keras.backend.backend()  # the one this part runs on
        return config, None
    # Processes other than 0 do not check: process 0 may have started the run.
    if run.exists() and not args.overwrite and run.writable:
        raise UsageError(
            f"{run.path!r} already holds a run; pass --resume to continue it or "
            "--overwrite to replace it"
        )
    if args.dataset is None:
        raise UsageError("the following arguments are required: --dataset")
    config = {"keras_mm_version": __version__, **DEFAULTS, **TUNING_DEFAULTS}
    given = _given(args, (*DEFAULTS, *TUNING_DEFAULTS, "tokenizer_epochs"))
    if given.get("family") == "text-to-image":
        from keras_mm.cli.text_to_image import FAMILY_DEFAULTS

        if args.init is not None:
            raise UsageError("--init applies to --family clip only")
        config.update(FAMILY_DEFAULTS)
    elif "tokenizer_epochs" in given:
        raise UsageError("--tokenizer-epochs applies to --family text-to-image only")
    config.update(given)
    config["dataset"] = _dataset_spec(args)
    if given.get("family") == "text-to-image" and args.dataset == SHAPES:
        from keras_mm.cli.text_to_image import FAMILY_DATASET_DEFAULTS

        for key, value in FAMILY_DATASET_DEFAULTS.items():
            if getattr(args, key) is None:
                config["dataset"][key] = value
    config["dataset"]["split_seed"] = config["seed"]
    config["backend"] = keras.backend.backend()
    initial = None
    if args.init is not None:
        initial = load_init(args.init)
        _init_settings(args, config, initial)
    else:
        check_model_options(config)
    return config, initial
