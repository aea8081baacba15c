"""Encode a user's images and texts with a trained run, as its training did.

`classify`, `index` and `search` load a run with `evaluation.load_run`, then
encode through this module only: texts with the run's tokenizer (`RunInputs`:
its word vocabulary, or an `--init` checkpoint's own), images through
`ImageTextDataset` (the streaming pipeline training used: same decoding, resize,
crop and normalization), one batch at a time.
"""

import hashlib
import os

import keras
import numpy as np

from keras_mm.cli.checkpoints import MODEL
from keras_mm.cli.evaluation import load_run
from keras_mm.cli.parser import UsageError
from keras_mm.cli.run_inputs import run_inputs
from keras_mm.data import ImageTextDataset, make_class_prompts
from keras_mm.data._files import DEFAULT_MAX_PIXELS
from keras_mm.data._stream_sources import detect_format, expand_braces
from keras_mm.data.class_prompts import prompt_words

DEFAULT_NORMALIZATION = "unit"  # the CLI's streams and readers give [0, 1] pixels


class RunModel:
    """A trained run's model with its text and image preprocessing.

    The preprocessing is the run's `RunInputs`: its word vocabulary and [0, 1]
    images, or (`train --init` runs) the checkpoint's tokenizer and image
    mean / std.
    """

    def __init__(self, path):
        self.run, self.config = load_run(path)
        self.inputs = run_inputs(self.run, self.config)
        self.image_size = self.inputs.image_size
        self.sequence_length = self.inputs.sequence_length
        self.vocabulary = self.inputs.vocabulary
        if self.vocabulary is None and "inputs" not in self.config:
            self.normalization = DEFAULT_NORMALIZATION
        else:
            self.normalization = [list(self.inputs.mean), list(self.inputs.std)]
        keras.backend.clear_session()
        self.model = keras.saving.load_model(self.run.file(MODEL), compile=False)

    @property
    def model_file(self):
        return self.run.file(MODEL)

    def model_digest(self):
        return file_digest(self.model_file)

    # ------------------------------------------------------------------ texts
    def encode_texts(self, texts):
        """Unit float32 embeddings `(N, D)` of a list of str."""
        return unit_rows(self.model.encode_text(self.inputs.tokenize(list(texts))))

    def class_weights(self, labels, templates, batch_size=256):
        """Zero-shot class embeddings `(C, D)`: prompts averaged per class."""
        if self.vocabulary is not None:
            prompts = make_class_prompts(
                labels, self.vocabulary, self.sequence_length, templates
            )
            text = {k: prompts[k] for k in ("token_ids", "padding_mask")}
        else:  # the checkpoint's own tokenizer
            flat = self.inputs.tokenize(prompt_words(labels, templates))
            shape = (len(labels), len(templates), -1)
            text = {k: v.reshape(shape) for k, v in flat.items()}
        return self.model.build_zero_shot_weights(text, batch_size=batch_size)

    # ----------------------------------------------------------------- images
    def image_stream(self, source, fmt, batch_size, skip_bad, image_root=None):
        """An in-order `ImageTextDataset` of `source` whose batches carry refs."""
        return ImageTextDataset(
            source,
            format=fmt,
            image_root=image_root,
            batch_size=batch_size,
            image_size=self.image_size,
            normalization=self.normalization,
            with_texts=False,  # images only: no tokenizer in the stream
            shuffle=False,
            drop_remainder=False,
            with_group_ids=False,
            with_refs=True,
            on_error="skip" if skip_bad else "raise",
        )

    def encode_batches(self, stream):
        """Yield `(refs, embeddings)` per batch of `stream` (one pass, in order).

        One image tower serves every batch (`CLIP.encode_image` builds a new
        one per call, and JAX / TensorFlow would compile its `predict` again for
        each batch), and a last, smaller batch is padded to the batch size (the
        padding dropped): one input shape, one compilation.
        """
        tower = self.model.image_tower()
        for batch in stream:
            refs = [r.decode("utf-8", "replace") for r in batch["refs"]]
            images = batch["images"]
            if 0 < len(images) < stream.batch_size:
                pad = np.zeros((stream.batch_size - len(images), *images.shape[1:]))
                images = np.concatenate([images, pad.astype(images.dtype)])
            embeddings = tower.predict(images, batch_size=len(images), verbose=0)
            yield refs, unit_rows(embeddings[: len(refs)])

    def encode_image_file(self, path):
        """Unit float32 embedding `(1, D)` of one image file."""
        from keras_mm.data._stream_counts import check_normalization
        from keras_mm.data._stream_images import load_image

        mean, std = check_normalization(self.normalization)
        image = load_image(path, self.image_size, mean, std, DEFAULT_MAX_PIXELS)
        return unit_rows(self.model.encode_image(image[None]))


def file_digest(path):
    """SHA-256 of a file: an index remembers the model file that built it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unit_rows(x):
    """float32 rows of unit L2 norm (a zero row stays zero)."""
    x = np.asarray(x, dtype="float32")
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype("float32")


def image_source(path, option="--images"):
    """`(source, format)` of an image collection: a directory, CSV/TSV or tars."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return path, "images"
    lower = path.lower()
    if ("{" in path and ".." in path) or lower.endswith(".tar"):
        try:
            shards = expand_braces(path)
        except ValueError as e:
            raise UsageError(f"{option}: {e}") from None
        missing = [s for s in shards if not os.path.isfile(s)]
        if missing:
            raise UsageError(f"{option}: tar shard {missing[0]!r} does not exist")
        return path, "tar"
    if not os.path.exists(path):
        raise UsageError(f"{option} {path!r} does not exist")
    if lower.endswith((".csv", ".tsv")):
        return path, detect_format(path)
    raise UsageError(
        f"{option} {path!r}: expected a directory of images, a .csv/.tsv with a "
        "filepath column, or tar shards (shard-{000..009}.tar)"
    )


def read_image_bytes(ref):
    """The bytes of an indexed image: a file path, or `shard.tar:member`."""
    shard, sep, member = ref.partition(".tar:")
    if sep and os.path.isfile(shard + ".tar"):
        import tarfile

        with tarfile.open(shard + ".tar") as tar:
            return tar.extractfile(member).read()
    with open(ref, "rb") as f:
        return f.read()
