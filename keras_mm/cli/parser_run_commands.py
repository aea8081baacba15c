"""Argument parsers of the commands that use a trained run: classify, index,
search (keras_mm/cli/indexing.py, classifying.py) and generate (text-to-image)."""

from keras_mm.cli.parser import (
    _add_common,
    _non_negative_float,
    _non_negative_int,
    _positive_float,
    _positive_int,
)


def add_classify(subparsers):
    p = subparsers.add_parser(
        "classify",
        help="zero-shot labels for every image of a folder",
        description="Classify every image of --images (a flat folder, or a "
        "class-per-folder tree: then also accuracy and a confusion matrix) among "
        "--labels by CLIP's zero-shot recipe. Writes OUTPUT/predictions.csv, "
        "OUTPUT/predictions.json, OUTPUT/contact_sheet.png and, for a tree, "
        "OUTPUT/metrics.json.",
    )
    _add_common(p)
    p.add_argument("run", help="run directory written by `keras-mm train`")
    p.add_argument("--images", required=True, help="folder of images (or class tree)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--labels", help="comma-separated labels: 'cat,dog,bird'")
    group.add_argument("--labels-file", help="text file, one label a line")
    p.add_argument(
        "--template",
        action="append",
        help="prompt template with one {} (repeatable; default 'a photo of a {}.')",
    )
    p.add_argument("--templates-file", help="text file, one template a line")
    p.add_argument("--output", help="output directory (default RUN/classify)")
    p.add_argument("--top-k", type=_positive_int, default=5, help="labels per image")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument(
        "--skip-bad-records",
        action="store_true",
        help="skip and count unreadable images instead of stopping",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the contact sheet")


def add_index(subparsers):
    p = subparsers.add_parser(
        "index",
        help="embed an image collection once into an on-disk index",
        description="Embed every image of --images (a folder, a .csv/.tsv with a "
        "filepath column, or tar shards) in one streaming pass. Writes "
        "OUTPUT/embeddings.npy (float32, unit rows), OUTPUT/files.txt and "
        "OUTPUT/index.json.",
    )
    _add_common(p)
    p.add_argument("run", help="run directory written by `keras-mm train`")
    p.add_argument(
        "--images",
        required=True,
        help="folder, .csv/.tsv, or tar shards ('shards-{000..009}.tar')",
    )
    p.add_argument("--image-root", help="directory a CSV's image paths are under")
    p.add_argument("--output", required=True, help="index directory")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument(
        "--skip-bad-records",
        action="store_true",
        help="skip and count unreadable images instead of stopping",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an index in --output"
    )


def add_search(subparsers):
    p = subparsers.add_parser(
        "search",
        help="the images of an index closest to a text or an image",
        description="Rank the images of INDEX by cosine similarity to a text "
        "query (or --image FILE), exactly; print rank, score and file, and write "
        "OUTPUT/search.json and OUTPUT/search.png (a contact sheet).",
    )
    _add_common(p)
    p.add_argument("index", help="index directory written by `keras-mm index`")
    p.add_argument("query", nargs="?", help="text query, e.g. 'a photo of a cat'")
    p.add_argument("--image", help="query by an image file instead of a text")
    p.add_argument("--top-k", type=_positive_int, default=10)
    p.add_argument(
        "--run", help="run directory of the model (default: the index's run)"
    )
    p.add_argument("--output", help="directory of the results (default INDEX)")
    p.add_argument("--no-plots", action="store_true", help="skip the contact sheet")


def add_generate(subparsers):
    p = subparsers.add_parser(
        "generate",
        help="sample images for text prompts from a text-to-image run",
        description="Sample images from RUN/model.keras (a --family text-to-image "
        "run) for each PROMPT; writes OUTPUT/<prompt_with_underscores>/sample-<i>.png "
        "and grid.png per prompt.",
    )
    _add_common(p)
    p.add_argument("run", help="run directory written by `keras-mm train`")
    p.add_argument("prompts", nargs="+", metavar="PROMPT", help='e.g. "a red circle"')
    p.add_argument("--output", required=True, help="directory of the PNG files")
    p.add_argument(
        "--num-samples", type=_positive_int, default=8, help="samples per prompt"
    )
    p.add_argument(
        "--rerank",
        metavar="CLIP_RUN",
        help="a clip run: order each prompt's samples by CLIP score, best first",
    )
    p.add_argument(
        "--temperature",
        type=_non_negative_float,
        default=1.0,
        help="sampling temperature (0 = greedy; default 1)",
    )
    p.add_argument("--top-k", type=_positive_int, help="sample among the k likeliest")
    p.add_argument(
        "--top-p",
        type=_positive_float,
        help="nucleus mass in (0, 1] (default 0.9 for runs trained with prompt "
        "dropout, as `keras-mm train` makes them; else 1)",
    )
    p.add_argument(
        "--guidance-scale",
        type=_non_negative_float,
        help="classifier-free guidance scale; 1 = none (default 2 for runs "
        "trained with prompt dropout)",
    )
    p.add_argument("--seed", type=_non_negative_int, default=0, help="random seed")
    p.add_argument("--batch-size", type=_positive_int, default=64)
