"""`keras-mm evaluate`: zero-shot and retrieval metrics on the test split."""

import os

import keras
import numpy as np

from keras_mm.cli.app import RunError
from keras_mm.cli.checkpoints import (
    EMBEDDINGS_PNG,
    METRICS,
    MODEL,
    RUN_CONFIG,
    SIMILARITY_PNG,
    VOCABULARY,
    RunDir,
)
from keras_mm.cli.data import SHAPES, TEXT_KEYS, load_dataset
from keras_mm.cli.parser import CLASS_METRICS, RECALL_KS, UsageError
from keras_mm.cli.run_inputs import adapt_dataset, run_inputs
from keras_mm.cli.streaming import STREAM, evaluate_stream
from keras_mm.metrics import retrieval_metrics, zero_shot_accuracy

KS = RECALL_KS


def load_run(path):
    """`(run, config)` of a trained run directory.

    Its tokenizer and image preprocessing (word vocabulary or the `--init`
    checkpoint's): `keras_mm.cli.run_inputs.run_inputs(run, config)`.
    """
    run = RunDir(path)
    if not os.path.isdir(run.path):
        raise RunError(f"run directory {run.path!r} does not exist")
    if not run.exists():
        raise RunError(f"{run.path!r} holds no run ({RUN_CONFIG} missing)")
    if not os.path.isfile(run.file(MODEL)):
        raise RunError(
            f"{run.path!r} has no trained model ({MODEL} missing): finish training "
            f"first (keras-mm train --output {run.path} --resume)"
        )
    return run, run.config()


def class_level_recall(similarity, query_labels, item_labels, ks=KS):
    """Recall@K where any item of the query's class counts as a match.

    Ties count against the query, as in `keras_mm.metrics.retrieval_metrics`.
    """
    positive = query_labels[:, None] == item_labels[None, :]
    best = np.max(np.where(positive, similarity, -np.inf), axis=1)
    ranks = 1 + np.sum((similarity >= best[:, None]) & ~positive, axis=1)
    return {k: float(np.mean(ranks <= k)) for k in ks}


def compute_metrics(model, data, batch_size):
    """Metrics (dict of floats) and the embeddings the plots use."""
    test = data["test"]
    images = model.encode_image(test["images"], batch_size=batch_size)
    texts = model.encode_text(
        {k: test[k] for k in TEXT_KEYS}, batch_size=batch_size
    ).astype("float32")
    similarity = images @ texts.T
    metrics = {
        "test_images": int(len(images)),
        "test_captions": int(len(texts)),
    }
    metrics.update(retrieval_metrics(similarity, test["caption_image_index"], ks=KS))
    labels = test["labels"]
    if data["class_prompts"] is not None:
        weights = model.build_zero_shot_weights(
            data["class_prompts"], batch_size=batch_size
        )
        metrics["num_classes"] = int(len(weights))
        zs = zero_shot_accuracy(images @ weights.T, labels, ks=(1, 5))
        metrics["zero_shot_top1"], metrics["zero_shot_top5"] = zs["top1"], zs["top5"]
        caption_labels = labels[test["caption_image_index"]]
        for name, sim, q, t in (
            ("image_to_text", similarity, labels, caption_labels),
            ("text_to_image", similarity.T, caption_labels, labels),
        ):
            for k, value in class_level_recall(sim, q, t).items():
                metrics[f"{name}_class_r{k}"] = value
            # R@1 of a model that ranks the items of the query's class first,
            # in random order: the mean of 1 / (items of the query's class).
            per_class = np.bincount(t, minlength=len(weights))
            metrics[f"{name}_r1_chance"] = float(np.mean(1.0 / per_class[q]))
        metrics["captions_per_class"] = float(
            len(caption_labels) / max(len(np.unique(caption_labels)), 1)
        )
        held = data.get("compositional")
        if held is not None and len(held["labels"]):
            held_images = model.encode_image(held["images"], batch_size=batch_size)
            zs = zero_shot_accuracy(held_images @ weights.T, held["labels"], ks=(1,))
            metrics["compositional_zero_shot_top1"] = zs["top1"]
    return metrics, {"images": images, "texts": texts, "similarity": similarity}


def _pct(value):
    """A percentage, or "n/a" for a metric the data cannot measure (NaN / None).

    Recall@K is NaN when K covers every candidate (`retrieval_metrics`).
    """
    if value is None or value != value:
        return "n/a"
    return f"{value:.1%}"


def _json_safe(metrics):
    """NaN (not strict JSON) becomes null in metrics.json."""
    return {
        k: None if isinstance(v, float) and v != v else v for k, v in metrics.items()
    }


def _retrieval_rows(metrics, suffix="", label=""):
    rows = []
    for name, arrow in (
        ("image_to_text", "image->text"),
        ("text_to_image", "text->image"),
    ):
        for k in KS:
            value = metrics.get(f"{name}{suffix}_r{k}")
            rows.append((f"{arrow} R@{k}{label}", _pct(value)))
    return rows


def _rows(metrics):
    pct = _pct
    if "zero_shot_top1" not in metrics:
        return [("zero-shot", "n/a (no classes)"), *_retrieval_rows(metrics)]
    n = metrics["num_classes"]
    rows = [
        (f"zero-shot top-1 ({n} classes)", pct(metrics["zero_shot_top1"])),
        ("zero-shot top-5", pct(metrics["zero_shot_top5"])),
    ]
    if "compositional_zero_shot_top1" in metrics:
        rows.append(
            (
                "zero-shot top-1, held-out combos",
                pct(metrics["compositional_zero_shot_top1"]),
            )
        )
    # With classes, many captions say the same thing ("a red circle"): the
    # class-level recall is what such data measures, so it comes first.
    rows += _retrieval_rows(metrics, "_class", ", same class")
    rows += _retrieval_rows(metrics, "", ", own caption *")
    return rows


def _footnote(metrics):
    """Why instance-level recall is low on data whose captions repeat per class."""
    if "image_to_text_r1_chance" not in metrics:
        return []
    i2t = _pct(metrics["image_to_text_r1_chance"])
    t2i = _pct(metrics["text_to_image_r1_chance"])
    n = metrics["captions_per_class"]
    return [
        "* own caption: only the image's own caption (image->text) or the",
        "  caption's own image (text->image) counts. Captions name the class and",
        f"  at most the size, so ~{n:.0f} test captions fit each image equally well",
        "  (identical ones tie, and ties count against): a model perfect at class",
        f"  level gets R@1 {i2t} (image->text) and {t2i} (text->image) by chance.",
    ]


def format_table(metrics, title):
    rows = _rows(metrics)
    width = max(len(name) for name, _ in rows)
    value_width = max(len(value) for _, value in rows)
    rule = "-" * (width + value_width + 3)
    lines = [title, rule]
    lines += [f"{name:<{width}}   {value:>{value_width}}" for name, value in rows]
    lines.append(rule)
    return "\n".join(lines + _footnote(metrics))


def evaluate(args):
    run, config = load_run(args.run)
    spec = config["dataset"]
    for name, _ in args.fail_under:
        if name in CLASS_METRICS and spec["kind"] != SHAPES:
            raise UsageError(
                f"--fail-under: {name} needs a dataset with classes; the run "
                f"{run.path!r} was trained on a caption file"
            )
    keras.backend.clear_session()
    inputs = run_inputs(run, config) if "inputs" in config else None
    if inputs is not None:
        vocabulary = inputs.vocabulary
    else:
        vocabulary = None if spec["kind"] == SHAPES else run.read_json(VOCABULARY)
    if spec["kind"] == STREAM:
        return _evaluate_stream(args, run, config, vocabulary, inputs)
    data = load_dataset(spec, vocabulary)
    if inputs is not None:
        data = adapt_dataset(data, inputs)
    model = keras.saving.load_model(run.file(MODEL), compile=False)
    metrics, embeddings = compute_metrics(model, data, args.batch_size)
    metrics["backend"] = keras.backend.backend()
    run.write_json(METRICS, _json_safe(metrics))
    name = "shapes" if spec["kind"] == SHAPES else os.path.basename(spec["path"])
    title = (
        f"{config['family']} on {name}, test split: {metrics['test_images']} "
        f"images, {metrics['test_captions']} captions "
        f"(backend {keras.backend.backend()})"
    )
    print(format_table(metrics, title))
    print(f"Wrote {run.file(METRICS)}")
    if not args.no_plots:
        from keras_mm.cli.plots import write_plots

        written = write_plots(
            data["test"],
            embeddings,
            data.get("class_names"),
            run.file(SIMILARITY_PNG),
            run.file(EMBEDDINGS_PNG),
        )
        for path in written:
            print(f"Wrote {path}")
    return _check_thresholds(metrics, args.fail_under)


def _evaluate_stream(args, run, config, vocabulary, inputs=None):
    """Metrics of a streamed dataset: its test split is encoded batch by batch."""
    spec = config["dataset"]
    model = keras.saving.load_model(run.file(MODEL), compile=False)
    metrics = evaluate_stream(model, spec, vocabulary, args.batch_size, inputs)
    metrics["backend"] = keras.backend.backend()
    run.write_json(METRICS, metrics)
    title = (
        f"{config['family']} on {os.path.basename(spec['path'])} (streamed), test "
        f"split: {metrics['test_images']} image-text pairs "
        f"(backend {keras.backend.backend()})"
    )
    print(format_table(metrics, title))
    print(f"Wrote {run.file(METRICS)} (no plots for streamed datasets)")
    return _check_thresholds(metrics, args.fail_under)


def _check_thresholds(metrics, thresholds):
    failed = []
    for name, minimum in thresholds:
        if name not in metrics:
            known = ", ".join(k for k, v in metrics.items() if isinstance(v, float))
            raise UsageError(f"--fail-under: unknown metric {name!r} (one of {known})")
        value = metrics[name]
        if value is None or value != value:
            failed.append(f"{name} = n/a (the test split cannot measure it)")
        elif value < minimum:
            failed.append(f"{name} = {value:.4f} < {minimum}")
    if failed:
        raise RunError("below the required minimum: " + "; ".join(failed))
    return 0
