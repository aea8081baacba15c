"""Streamed datasets of the CLI: CSV/TSV, tar shards, class folders, VQA.

These never load a split into memory: `keras-mm train` fits on
`keras_mm.data.ImageTextDataset` streams and `keras-mm evaluate` encodes the
test split batch by batch, keeping only the embeddings.
"""

import os

import numpy as np

from keras_mm.cli.parser import UsageError
from keras_mm.data import ImageTextDataset
from keras_mm.data._stream_sources import detect_format, expand_braces

STREAM = "stream"
STREAM_FORMATS = ("vqa", "csv", "tar", "folder")
STREAM_DEFAULTS = {"image_size": 64, "sequence_length": 16, "test_fraction": 0.1}


def stream_format(path, fmt):
    """The stream format of `--dataset PATH`, or None for the in-memory readers."""
    if fmt not in (None, "auto"):
        return fmt if fmt in STREAM_FORMATS else None
    pattern = "{" in path and ".." in path
    if not (pattern or os.path.exists(path)):
        return None  # the caller reports the missing path
    try:
        detected = detect_format(path)
    except ValueError:
        return None
    return detected if detected in STREAM_FORMATS else None


def stream_spec(args, fmt, given):
    """The `run.json` dataset entry of a streamed `--dataset`."""
    path = args.dataset
    if fmt == "tar":
        shards = expand_braces(path)
        missing = [s for s in shards if not os.path.isfile(s)]
        if missing:
            raise UsageError(f"--dataset: tar shard {missing[0]!r} does not exist")
    elif not os.path.exists(path):
        raise UsageError(f"--dataset {path!r} does not exist")
    root = args.image_root
    spec = {
        "kind": STREAM,
        "path": os.path.abspath(path),
        "format": fmt,
        "image_root": os.path.abspath(root) if root else None,
        "max_images": None,
        "skip_bad_records": bool(getattr(args, "skip_bad_records", False)),
        **STREAM_DEFAULTS,
    }
    spec.update(given)
    return spec


def make_stream(spec, split, vocabulary, batch_size, seed, training=True, inputs=None):
    """An `ImageTextDataset` over the `"train"` or `"test"` part of `spec`.

    `inputs`: the run's `RunInputs` (`--init` runs: the checkpoint's tokenizer
    and image normalisation), or None (word `vocabulary`, images in [0, 1]).
    """
    extra = {}
    if inputs is not None:
        extra["normalization"] = (inputs.mean, inputs.std)
        if inputs.vocabulary is None:
            extra["tokenizer"] = inputs.text
        else:
            vocabulary = inputs.vocabulary
    return ImageTextDataset(
        spec["path"],
        format=spec["format"],
        image_root=spec.get("image_root"),
        batch_size=batch_size,
        image_size=spec["image_size"],
        sequence_length=spec["sequence_length"],
        vocabulary=vocabulary,
        seed=seed,
        shuffle=training,
        drop_remainder=training,
        with_group_ids=training,
        on_error="skip" if spec.get("skip_bad_records") else "raise",
        split=split,
        test_fraction=spec["test_fraction"],
        **extra,
    )


def stream_embeddings(model, stream):
    """Image and text embeddings of every record of `stream`, batch by batch."""
    images, texts = [], []
    for batch in stream:
        images.append(np.asarray(model.encode_image(batch["images"])))
        text = {k: batch[k] for k in ("token_ids", "padding_mask")}
        texts.append(np.asarray(model.encode_text(text)))
    if not images:
        raise ValueError(f"{stream.source}: the test split is empty.")
    return np.concatenate(images), np.concatenate(texts).astype("float32")


def evaluate_stream(model, spec, vocabulary, batch_size, inputs=None):
    """`(metrics, embeddings)` on the streamed test split (no plots data)."""
    from keras_mm.metrics import retrieval_metrics, zero_shot_accuracy

    stream = make_stream(
        spec, "test", vocabulary, batch_size, 0, training=False, inputs=inputs
    )
    images, texts = stream_embeddings(model, stream)
    metrics = {"test_images": int(len(images)), "test_captions": int(len(texts))}
    if stream.bad_records:
        metrics["bad_records"] = int(sum(stream.bad_records.values()))
    similarity = images @ texts.T
    pairs = np.arange(len(images), dtype="int32")  # record i: image i, text i
    metrics.update(retrieval_metrics(similarity, pairs, ks=(1, 5, 10)))
    if stream.class_names:
        from keras_mm.data import make_tokenizer, tokenize_texts

        classes = stream.class_names
        prompts = [f"a photo of a {c.replace('_', ' ')}." for c in classes]

        if inputs is not None:
            encoded = inputs.tokenize(prompts)
        else:
            encoded = tokenize_texts(
                prompts, make_tokenizer(vocabulary, spec["sequence_length"])
            )
        weights = model.build_zero_shot_weights(encoded, batch_size=batch_size)
        labels = np.asarray(stream.records.groups)
        if len(labels) == len(images):
            top = min(5, len(classes))
            zs = zero_shot_accuracy(images @ weights.T, labels, ks=(1, top))
            metrics["num_classes"] = len(classes)
            metrics["zero_shot_top1"] = zs["top1"]
            metrics["zero_shot_top5"] = zs[f"top{top}"]
    return metrics
