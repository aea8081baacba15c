"""The `keras-mm` argument parser: one-line errors, no traceback."""

import argparse
import math
import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")
FAMILIES = ("clip", "text-to-image")
DATASET_FORMATS = (
    "auto",
    "coco",
    "karpathy",
    "flickr30k",
    "vqa",
    "csv",
    "tar",
    "folder",
)
IMAGE_ENCODERS = ("conv", "vit")
RECALL_KS = (1, 5, 10)
# Metrics of metrics.json that `--fail-under` can hold to a minimum (higher is
# better); the zero-shot and class-level ones need a dataset with classes.
CLASS_METRICS = (
    "zero_shot_top1",
    "zero_shot_top5",
    "compositional_zero_shot_top1",
    *(f"{d}_class_r{k}" for d in ("image_to_text", "text_to_image") for k in RECALL_KS),
)
THRESHOLD_METRICS = (
    *(f"{d}_r{k}" for d in ("image_to_text", "text_to_image") for k in RECALL_KS),
    *CLASS_METRICS,
)

# Exit codes.
EXIT_OK = 0
EXIT_FAILURE = 1  # a run failed (unreadable data, missing run, ...)
EXIT_USAGE = 2  # bad arguments (argparse's own code)
EXIT_NAN = 3  # training stopped on a non-finite loss
EXIT_INTERRUPTED = 130  # Ctrl-C


class UsageError(Exception):
    """A bad argument found after parsing; printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line on stderr (exit code 2)."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _int_at_least(text, least):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    if value < least:
        raise argparse.ArgumentTypeError(f"must be >= {least}, got {value}")
    return value


def _positive_int(text):
    return _int_at_least(text, 1)


def _non_negative_int(text):
    return _int_at_least(text, 0)


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _fraction(text):
    value = _positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value


def _threshold(text):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected METRIC=VALUE, got {text!r}")
    if name.endswith("_rank"):
        raise argparse.ArgumentTypeError(
            f"{name} is a rank (lower is better); a minimum applies to one of "
            f"{', '.join(THRESHOLD_METRICS)}"
        )
    if name not in THRESHOLD_METRICS:
        raise argparse.ArgumentTypeError(
            f"unknown metric {name!r} (one of {', '.join(THRESHOLD_METRICS)})"
        )
    try:
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number after '=', got {text!r}")


def _add_common(parser):
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="Keras backend; default: $KERAS_BACKEND or ~/.keras/keras.json",
    )


def _add_train(subparsers):
    p = subparsers.add_parser(
        "train",
        help="train a model and checkpoint it every epoch",
        description="Train a model family on the bundled shapes data or on a "
        "caption dataset (COCO captions JSON, Karpathy split JSON or a Flickr30K "
        "captions file). Writes OUTPUT/run.json, a checkpoint per epoch "
        "(OUTPUT/checkpoints/) and the trained OUTPUT/model.keras.",
    )
    _add_common(p)
    # Defaults are None here and filled in by `training.resolve_config`, so that
    # `--resume` can tell which settings were given explicitly.
    p.add_argument("--family", choices=FAMILIES, help="model family (default clip)")
    p.add_argument(
        "--loss",
        choices=("clip", "siglip"),
        help="contrastive loss of the clip family (default clip)",
    )
    p.add_argument(
        "--dataset",
        help="'shapes' (bundled, no download), a caption file (COCO/Karpathy/VQA "
        ".json, Flickr30K .token), a .csv/.tsv (filepath,title columns), tar shards "
        "(data/shard-{00000..00127}.tar) or a class-per-folder directory",
    )
    p.add_argument(
        "--format",
        choices=DATASET_FORMATS,
        help="format of a --dataset path (default auto: detected from the file)",
    )
    p.add_argument("--image-root", help="directory of the images of a --dataset path")
    p.add_argument(
        "--skip-bad-records",
        action="store_true",
        default=None,
        help="streamed datasets: skip and count missing, corrupt, truncated or "
        "oversized images and unreadable captions instead of stopping",
    )
    p.add_argument("--image-size", type=_positive_int, help="image side in pixels")
    p.add_argument("--sequence-length", type=_positive_int, help="tokens per text")
    p.add_argument(
        "--train-samples", type=_positive_int, help="shapes: training images"
    )
    p.add_argument("--test-samples", type=_positive_int, help="shapes: test images")
    p.add_argument(
        "--max-images", type=_positive_int, help="read at most this many images"
    )
    p.add_argument(
        "--test-fraction",
        type=_fraction,
        help="share of images held out for testing when the file has no test "
        "split (default 0.1)",
    )
    p.add_argument(
        "--image-encoder",
        choices=IMAGE_ENCODERS,
        help="conv (a small CNN, default) or vit (keras_mm.encoders.ImageEncoder)",
    )
    p.add_argument("--width", type=_positive_int, help="encoder width (default 64)")
    p.add_argument("--embed-dim", type=_positive_int, help="shared embedding size")
    p.add_argument("--epochs", type=_positive_int, help="total epochs (default 5)")
    p.add_argument(
        "--tokenizer-epochs",
        type=_positive_int,
        help="text-to-image: epochs of the image tokenizer stage (default 12)",
    )
    p.add_argument("--batch-size", type=_positive_int, help="batch size (default 64)")
    p.add_argument("--learning-rate", type=_positive_float, help="AdamW learning rate")
    p.add_argument(
        "--schedule",
        choices=("cosine", "constant"),
        help="learning rate schedule: cosine (half an epoch of warm-up, then "
        "cosine decay to 0; default) or constant",
    )
    p.add_argument("--seed", type=_non_negative_int, help="random seed (default 0)")
    p.add_argument(
        "--init",
        metavar="PATH",
        help="fine-tune from PATH: a Hugging Face CLIP/SigLIP checkpoint directory, "
        "a keras-hub CLIP/SigLIP preset directory, an earlier run directory or its "
        ".keras file (the run uses its tokenizer and image normalisation)",
    )
    p.add_argument(
        "--lock-image",
        action="store_true",
        default=None,
        help="freeze the image tower, train the text side only (LiT)",
    )
    p.add_argument(
        "--image-lr-multiplier",
        type=_non_negative_float,
        help="learning rate of the image tower relative to --learning-rate "
        "(default 1; e.g. 0.1 for a pretrained tower)",
    )
    p.add_argument(
        "--text-lr-multiplier",
        type=_non_negative_float,
        help="learning rate of the text tower relative to --learning-rate (default 1)",
    )
    p.add_argument(
        "--tile-size",
        type=_positive_int,
        help="compute the contrastive loss this many image rows at a time "
        "(memory of large batches; same loss)",
    )
    from keras_mm.cli.parser_distributed import add_distribution_options

    add_distribution_options(p, _positive_int, _non_negative_int)
    p.add_argument("--output", required=True, help="run directory")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --output from its last checkpoint",
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="start over, replacing a run already in --output",
    )
    p.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=None,
        help="Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch",
    )


def _add_evaluate(subparsers):
    p = subparsers.add_parser(
        "evaluate",
        help="print zero-shot and retrieval metrics on the test split",
        description="Evaluate RUN/model.keras on the run's test split: zero-shot "
        "top-1/top-5 (datasets with classes) and retrieval R@1/5/10 in both "
        "directions. Writes RUN/metrics.json, RUN/similarity.png and "
        "RUN/embeddings.png.",
    )
    _add_common(p)
    p.add_argument("run", help="run directory written by `keras-mm train`")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--no-plots", action="store_true", help="skip the PNG files")
    p.add_argument(
        "--fail-under",
        action="append",
        type=_threshold,
        default=[],
        metavar="METRIC=VALUE",
        help="exit with code 1 if a metric of metrics.json is below VALUE, e.g. "
        "zero_shot_top1=0.95 (repeatable)",
    )


def _add_export(subparsers):
    p = subparsers.add_parser(
        "export",
        help="export the trained model as a TensorFlow SavedModel",
        description="Export RUN/model.keras as a SavedModel with the serving "
        "endpoints serve, encode_image and encode_text.",
    )
    _add_common(p)
    p.add_argument("run", help="run directory written by `keras-mm train`")
    p.add_argument("--output", help="SavedModel directory (default RUN/saved_model)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing --output"
    )


def _version():
    from keras_mm.cli.quiet import import_quietly

    import_quietly()  # Keras, only when --version is asked for
    import keras

    from keras_mm.version import __version__

    return (
        f"keras-mm {__version__} (Keras {keras.__version__}, backend "
        f"{keras.backend.backend()})"
    )


class _VersionAction(argparse.Action):
    """`--version`, which imports Keras only when it is given."""

    def __init__(self, option_strings, dest, help=None):
        super().__init__(option_strings, dest, nargs=0, default=None, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(_version())
        parser.exit()


def make_parser():
    parser = Parser(
        prog="keras-mm",
        description="Train, evaluate and export keras_mm multimodal models on "
        "TensorFlow, JAX or PyTorch; classify, index and search images with them.",
    )
    _add_common(parser)  # `keras-mm --backend jax train ...` works too
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="print the versions and the Keras backend, then exit",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    _add_train(subparsers)
    _add_evaluate(subparsers)
    _add_export(subparsers)
    from keras_mm.cli import parser_run_commands as run_commands

    run_commands.add_classify(subparsers)
    run_commands.add_index(subparsers)
    run_commands.add_search(subparsers)
    run_commands.add_generate(subparsers)
    return parser


def requested_backend(argv):
    """The value of `--backend` in `argv` (None if absent), before parsing."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--backend":
            return argv[i + 1] if i + 1 < len(argv) else None
        if arg.startswith("--backend="):
            return arg.split("=", 1)[1]
    return None


def check_dir(path, option):
    if not os.path.isdir(path):
        what = "is not a directory" if os.path.exists(path) else "does not exist"
        raise UsageError(f"{option} {path!r} {what}")
    return path


def check_file(path, option):
    if not os.path.isfile(path):
        what = "is not a file" if os.path.exists(path) else "does not exist"
        raise UsageError(f"{option} {path!r} {what}")
    return path
