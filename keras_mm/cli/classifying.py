"""`keras-mm classify`: zero-shot labels for every image of a folder.

CLIP's zero-shot recipe (Radford et al., 2021, section 3.1.4): each label is
written into the prompt templates, the prompt embeddings are averaged per
label, and an image's scores are the cosine similarities of its embedding with
the labels'. Images are streamed (`ImageTextDataset`), one batch in memory.
"""

import csv
import json
import os

import numpy as np

from keras_mm.cli.encoding import RunModel
from keras_mm.cli.parser import UsageError, check_dir, check_file
from keras_mm.data._stream_sources import IMAGE_EXTENSIONS

DEFAULT_TEMPLATE = "a photo of a {}."
PREDICTIONS_CSV = "predictions.csv"
PREDICTIONS_JSON = "predictions.json"
METRICS_JSON = "metrics.json"
CONTACT_SHEET = "contact_sheet.png"


def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _lines(path, option):
    check_file(path, option)
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def read_labels(args):
    if args.labels_file is not None:
        return _lines(args.labels_file, "--labels-file")
    if args.labels is not None:
        return [label.strip() for label in args.labels.split(",") if label.strip()]
    return None


def read_templates(args):
    templates = list(args.template or [])
    if args.templates_file is not None:
        templates += _lines(args.templates_file, "--templates-file")
    templates = templates or [DEFAULT_TEMPLATE]
    for t in templates:
        if t.count("{}") != 1:
            raise UsageError(
                f"--template: every template needs exactly one '{{}}' for the "
                f"label; got {t!r}"
            )
    return templates


def class_folders(root):
    """Sub-folder names of a class-per-folder tree, or None for a flat folder."""
    entries = sorted(os.listdir(root))
    if any(_is_image(e) and os.path.isfile(os.path.join(root, e)) for e in entries):
        return None
    folders = [
        e
        for e in entries
        if os.path.isdir(os.path.join(root, e))
        and any(_is_image(f) for f in os.listdir(os.path.join(root, e)))
    ]
    return folders or None


def _check_images(root, folders):
    if folders is not None:
        return
    for _, _, files in os.walk(root):
        if any(_is_image(f) for f in files):
            return
    raise UsageError(
        f"--images {root!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})"
    )


def _true_labels(folders, labels):
    """Index in `labels` of each class folder ("red_car" matches "red car")."""
    index = {label: i for i, label in enumerate(labels)}
    out = []
    for folder in folders:
        name = folder if folder in index else folder.replace("_", " ")
        if name not in index:
            raise UsageError(
                f"--labels: the class folder {folder!r} of --images is not one of "
                f"the labels {labels}; name every folder (or leave out --labels "
                "to use the folder names)"
            )
        out.append(index[name])
    return out


def confusion_matrix(true, predicted, num_labels):
    """`(C, C)` counts: row = true label, column = predicted label."""
    matrix = np.zeros((num_labels, num_labels), dtype="int64")
    np.add.at(matrix, (np.asarray(true), np.asarray(predicted)), 1)
    return matrix


def classify(args):
    root = os.path.abspath(check_dir(args.images, "--images"))
    folders = class_folders(root)
    _check_images(root, folders)
    labels = read_labels(args)
    if labels is None and folders is not None:
        labels = [f.replace("_", " ") for f in folders]
    if not labels:
        raise UsageError(
            "no labels: give --labels 'cat,dog' or --labels-file (one label a line)"
        )
    if len(set(labels)) != len(labels):
        raise UsageError(f"--labels: the labels must be distinct; got {labels}")
    templates = read_templates(args)
    truth = _true_labels(folders, labels) if folders is not None else None
    k = min(args.top_k, len(labels))

    run_model = RunModel(args.run)
    weights = run_model.class_weights(labels, templates, args.batch_size)
    stream = run_model.image_stream(
        root,
        "folder" if folders is not None else "images",
        args.batch_size,
        args.skip_bad_records,
    )
    files, top, scores = [], [], []
    for refs, embeddings in run_model.encode_batches(stream):
        similarity = embeddings @ weights.T
        order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
        files += refs
        top.append(order)
        scores.append(np.take_along_axis(similarity, order, axis=1))
    if not files:
        raise ValueError(f"{root}: no image could be read (all were skipped)")
    top, scores = np.concatenate(top), np.concatenate(scores)
    bad = int(sum(stream.bad_records.values()))

    output = args.output or os.path.join(run_model.run.path, "classify")
    os.makedirs(output, exist_ok=True)
    true = None
    if truth is not None:
        folder_index = {f: i for i, f in enumerate(folders)}
        true = [truth[folder_index[f.split(os.sep, 1)[0]]] for f in files]
    _write_predictions(output, files, top, scores, labels, templates, true, bad)
    print(
        f"keras-mm classify: {len(files)} images of {root}, {len(labels)} labels"
        + (f", {bad} unreadable images skipped" if bad else "")
    )
    if true is not None:
        predicted = top[:, 0]
        accuracy = float(np.mean(predicted == np.asarray(true)))
        matrix = confusion_matrix(true, predicted, len(labels))
        metrics = {
            "images": len(files),
            "accuracy": accuracy,
            "labels": labels,
            "confusion_matrix": matrix.tolist(),
            "bad_records": bad,
        }
        _write_json(os.path.join(output, METRICS_JSON), metrics)
        print(f"accuracy (top-1): {accuracy:.1%}")
        print(f"Wrote {os.path.join(output, METRICS_JSON)}")
    for name in (PREDICTIONS_CSV, PREDICTIONS_JSON):
        print(f"Wrote {os.path.join(output, name)}")
    if not args.no_plots:
        _contact_sheet(output, root, files, top, scores, labels, true)
    return 0


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)


def _write_predictions(output, files, top, scores, labels, templates, true, bad):
    k = top.shape[1]
    header = ["file"] + [f"{c}_{i + 1}" for i in range(k) for c in ("label", "score")]
    if true is not None:
        header.append("true_label")
    rows = []
    with open(os.path.join(output, PREDICTIONS_CSV), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for n, file in enumerate(files):
            pairs = [(labels[top[n, i]], float(scores[n, i])) for i in range(k)]
            row = [file] + [v for label, s in pairs for v in (label, f"{s:.6f}")]
            entry = {
                "file": file,
                "labels": [p[0] for p in pairs],
                "scores": [p[1] for p in pairs],
            }
            if true is not None:
                row.append(labels[true[n]])
                entry["true_label"] = labels[true[n]]
            writer.writerow(row)
            rows.append(entry)
    predictions = {
        "labels": labels,
        "templates": templates,
        "score": "cosine similarity of the image and label embeddings",
        "bad_records": bad,
        "predictions": rows,
    }
    _write_json(os.path.join(output, PREDICTIONS_JSON), predictions)


def _contact_sheet(output, root, files, top, scores, labels, true):
    from keras_mm.cli.contact_sheet import write_contact_sheet

    cells = []
    for n, file in enumerate(files):
        label, score = labels[top[n, 0]], scores[n, 0]
        colour = None
        if true is not None:
            colour = "green" if top[n, 0] == true[n] else "red"
        cells.append((os.path.join(root, file), f"{label} ({score:.2f})", colour))
    path = write_contact_sheet(
        cells, os.path.join(output, CONTACT_SHEET), "top label (cosine similarity)"
    )
    if path:
        print(f"Wrote {path}")
