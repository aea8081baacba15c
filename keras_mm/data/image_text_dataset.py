"""Streaming image-text datasets in tf.data, for `model.fit` on every backend."""

import numpy as np

from keras_mm.api_export import keras_mm_export
from keras_mm.data import _stream_sources as sources
from keras_mm.data._files import DEFAULT_MAX_PIXELS, check_dir
from keras_mm.data._stream_counts import BadRecordCounts, check_normalization
from keras_mm.data._stream_tar import read_shard
from keras_mm.data.vqa import DEFAULT_IMAGE_FILE_PATTERN


def _positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {value!r}")
    return value


@keras_mm_export("keras_mm.data.ImageTextDataset")
class ImageTextDataset:
    """A stream of (image, text) batches decoded on the fly, for `model.fit`.

    The annotation file (COCO captions JSON, Karpathy split JSON, a Flickr30K
    captions file, VQA questions JSON, an open_clip CSV/TSV) is parsed once; tar
    shards and images are read lazily. `dataset` is a `tf.data.Dataset` that
    `fit` takes on TensorFlow, JAX and torch: records are shuffled from a seed,
    images are fetched and checked in Python, decoded and resized in parallel
    (`map`, one image per core at once), batched, tokenized and prefetched.
    Only `prefetch` batches (plus the tar shuffle buffer of encoded bytes) are
    ever held, however large the split.

    Images: shortest side resized to `image_size` (bicubic; antialiased where it
    shrinks by more than 1.1x, after JPEG's DCT scaling) and centre-cropped, or
    with `augment=True` a random resized crop (Szegedy et al. 2015; open_clip's
    `scale=(0.9, 1.0)`), then normalized per channel ("clip":
    OpenAI CLIP's mean/std, "siglip": mean = std = 0.5, "unit": [0, 1]).

    Order: epoch `e` is a permutation drawn from `(seed, e)` (tar: shard order
    from `(seed, e)`, interleaved, then a seeded shuffle buffer), so it depends
    only on the seed and the epoch. Each pass over `dataset` serves the next
    epoch; `set_epoch(e, batch=b)` makes the next pass epoch `e` from batch `b`
    (resuming mid-epoch skips records before decoding them), and the `callback()`
    given to `fit` keeps the epoch in step with Keras' own epoch counter.

    Bad records: with `on_error="raise"` (default) a missing, corrupt,
    truncated or oversized image, an unreadable caption, or a path leaving the
    image root (absolute, `..`, a symbolic link; tar members `../x`, `/x`, links)
    stops the pass with a `ValueError` naming the file (inside `fit`, TensorFlow
    wraps it: the error is a `tf.errors.InvalidArgumentError` whose message is
    `"ValueError: <file>: ..."`). `on_error="skip"` drops and counts them:
    `bad_records` holds the counts of the last pass, and `callback()` prints them
    and adds `"bad_records"` to the logs at the end of each epoch.

    Args:
        source: str. An annotation file, a class-per-folder directory, a tar
            shard or a brace pattern of shards (`data/shard-{00000..00127}.tar`).
        format: "auto" (from the path) or one of "coco", "karpathy",
            "flickr30k", "vqa", "csv", "tar", "folder", or "images" (every
            image file under a directory, in sorted order, with empty texts:
            for embedding a collection, as `keras-mm index` does).
        image_root: str. Directory the image paths are relative to (not for tar
            and folders; default: the annotation file's directory).
        batch_size: int. image_size: int. Square output side.
        normalization: "clip", "siglip", "unit" or a `(mean, std)` pair.
        augment: bool. Random resized crop instead of the centre crop.
        crop_scale: `(min, max)` area fraction of the random crop.
        tokenizer: a keras-hub tokenizer with `sequence_length` (e.g.
            `make_tokenizer(vocabulary, 32)`) or a preprocessor returning
            `{"token_ids", "padding_mask"}` (e.g. a `CLIPPreprocessor`). None
            builds a word tokenizer from `vocabulary`.
        vocabulary: list of str or None. None builds one from the texts in one
            streaming pass (`build_vocabulary`).
        sequence_length: int. Tokens per text for the built tokenizer.
        shuffle: bool. shuffle_buffer: int (tar shards only).
        seed: int. on_error: "raise" or "skip". max_pixels: int.
        drop_remainder: bool. Drop the last smaller batch (fixed shapes for jit).
        split: Karpathy split(s) to read (None: all).
        image_key, caption_key, separator: CSV columns and separator (open_clip's
            `--csv-img-key`, `--csv-caption-key`, `--csv-separator`; default
            separator: tab for `.tsv`, comma otherwise).
        image_file_pattern: VQA image file name (as in `read_vqa`).
        prompt: str. Folder format: the text of class `c` is `prompt.format(c)`.
        test_fraction: float or None. With `split="train"` or `"test"` (other
            formats than Karpathy): a deterministic share of the images (by a
            hash of the image path) is the test split; for tar shards the last
            shard is the test split and the others the training split.
        with_group_ids: bool. Batches are `(inputs, group_ids)`, where
            `group_ids` marks texts of one image (or class) as positives for the
            contrastive losses; False yields `inputs` alone.
        with_refs: bool. Add `"refs"` to `inputs`: the image of each row (its
            path under the image root, or `shard:member` for tar shards), so
            that rows can be traced to files when bad records are skipped.
        with_texts: bool. False streams images only: no tokenizer is built or
            run, and `inputs` has no `"token_ids"` / `"padding_mask"` (for
            embedding images, as `keras-mm index` and `classify` do).

    Example (a CSV with `filepath` and `title` columns; see docs/data.md):

        stream = ImageTextDataset("captions.csv", batch_size=256, image_size=224,
                                  normalization="clip", on_error="skip")
        model.fit(stream.dataset, epochs=10, callbacks=[stream.callback()])
    """

    def __init__(
        self,
        source,
        format="auto",
        image_root=None,
        batch_size=32,
        image_size=224,
        normalization="unit",
        augment=False,
        crop_scale=(0.9, 1.0),
        tokenizer=None,
        vocabulary=None,
        sequence_length=32,
        shuffle=True,
        shuffle_buffer=1000,
        seed=0,
        on_error="raise",
        max_pixels=DEFAULT_MAX_PIXELS,
        drop_remainder=True,
        split=None,
        image_key="filepath",
        caption_key="title",
        separator=None,
        image_file_pattern=DEFAULT_IMAGE_FILE_PATTERN,
        prompt="a photo of a {}.",
        with_group_ids=True,
        test_fraction=None,
        with_refs=False,
        with_texts=True,
    ):
        import os

        source = os.fspath(source)
        if format == "auto":
            format = sources.detect_format(source)
        if format not in sources.FORMATS:
            raise ValueError(
                f"`format` must be 'auto' or one of {sources.FORMATS}. "
                f"Received: format={format!r}"
            )
        if on_error not in ("raise", "skip"):
            raise ValueError(
                f"`on_error` must be 'raise' or 'skip'. Received: {on_error!r}"
            )
        self.batch_size = _positive("batch_size", batch_size)
        self.image_size = _positive("image_size", image_size)
        _positive("max_pixels", max_pixels)
        self.mean, self.std = check_normalization(normalization)
        self.format, self.source, self.seed = format, source, int(seed)
        self.augment, self.crop_scale = bool(augment), tuple(crop_scale)
        self.shuffle, self.on_error = bool(shuffle), on_error
        self.shuffle_buffer = _positive("shuffle_buffer", shuffle_buffer)
        self.drop_remainder, self.with_group_ids = drop_remainder, with_group_ids
        self.with_refs = bool(with_refs)
        if not with_texts and (tokenizer is not None or vocabulary is not None):
            raise ValueError(
                "`with_texts=False` streams images only: pass no `tokenizer` or "
                f"`vocabulary`. Received: tokenizer={tokenizer!r}, "
                f"vocabulary of {len(vocabulary or ())} words"
            )
        self.counts = BadRecordCounts()
        self._epoch, self._skip, self._iteration, self._pinned = 0, 0, -1, False
        self.records, self.shards, self.class_names = None, None, None
        self.keep = None  # tar: a predicate on sample names (held-out splits)
        max_bytes = max_pixels * 8
        if format == "tar":
            self.shards = sources.expand_braces(source)
            root = None
        else:
            if format == "folder":
                root = check_dir(source, "source")
                self.records = sources.folder_records(root, prompt)
                self.class_names = self.records.class_names
            elif format == "images":
                root = check_dir(source, "source")
                self.records = sources.image_records(root)
            else:
                if image_root is None:
                    image_root = os.path.dirname(os.path.abspath(source))
                root = check_dir(image_root, "image_root")
                karpathy_split = split if format == "karpathy" else None
                self.records = self._parse(
                    format, source, root, karpathy_split, image_key, caption_key,
                    separator, image_file_pattern,
                )  # fmt: skip
        if test_fraction is not None:
            sources.hold_out(self, split, test_fraction)
        from keras_mm.data._stream_images import Fetcher

        real_root = None if root is None else os.path.realpath(root)
        self._fetch = Fetcher(
            real_root, source, max_pixels, self.image_size, on_error == "skip",
            self.counts,
        )  # fmt: skip
        self._max_bytes = max_bytes
        self.vocabulary = None
        if with_texts and tokenizer is None:
            from keras_mm.data.tokenizer import make_tokenizer
            from keras_mm.data.vocabulary import build_vocabulary

            if vocabulary is None:
                vocabulary = build_vocabulary(self._all_texts())
            self.vocabulary = list(vocabulary)
            tokenizer = make_tokenizer(self.vocabulary, sequence_length)
        self.tokenizer = tokenizer
        from keras_mm.data._stream_pipeline import build

        self.dataset = build(self)

    # ------------------------------------------------------------- sources
    @staticmethod
    def _parse(fmt, source, root, split, image_key, caption_key, sep, pattern):
        if fmt == "coco":
            return sources.coco_records(source, root)
        if fmt == "karpathy":
            return sources.karpathy_records(source, root, split)
        if fmt == "flickr30k":
            return sources.flickr30k_records(source, root)
        if fmt == "vqa":
            return sources.vqa_records(source, root, pattern)
        return sources.csv_records(source, root, image_key, caption_key, sep)

    def _all_texts(self):
        """Every text, in one pass (tar: caption members only, images skipped)."""
        if self.records is not None:
            return self.records.texts
        texts = []
        for shard in self.shards:
            for ref, _, text, error in read_shard(shard, self._max_bytes, False):
                if not error and (self.keep is None or self.keep(ref)):
                    texts.append(text)
        self._num_samples = len(texts)
        return texts

    def __len__(self):
        """Batches per epoch (tar: counted in one pass over the shard headers)."""
        if self.records is not None:
            n = len(self.records.paths)
        else:
            if getattr(self, "_num_samples", None) is None:
                self._all_texts()
            n = self._num_samples
        return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

    # --------------------------------------------------------------- epochs
    def set_epoch(self, epoch, batch=0):
        """Make the next pass serve epoch `epoch`, starting at batch `batch`."""
        self._epoch, self._skip = int(epoch), int(batch) * self.batch_size
        self._pinned = True

    def _next_pass(self):
        """Called by the pipeline when a pass starts: `(iteration, epoch, skip)`."""
        self._iteration += 1
        if not self._pinned and self._iteration > 0:
            self._epoch += 1
        self._pinned = False
        out = np.asarray([self._iteration, self._epoch, self._skip], "int64")
        self._skip, self._last = 0, self._iteration
        return out

    @property
    def bad_records(self):
        """`{reason: count}` of the last pass over `dataset`."""
        return self.counts.report(getattr(self, "_last", -1))

    @property
    def records_read(self):
        """Records fetched so far (every pass): a measure of read-ahead."""
        return self.counts.records_read

    def callback(self, verbose=True):
        """A Keras callback: epoch `e` of `fit` is epoch `e` of the stream."""
        from keras_mm.data._stream_callback import StreamEpochCallback

        return StreamEpochCallback(self, verbose)

    @staticmethod
    def value_error(error):
        """The `ValueError` a bad record raised inside tf.data, or None.

        Inside `fit`, TensorFlow wraps the pipeline's `ValueError` in a
        `tf.errors.InvalidArgumentError`; this recovers its one-line message.
        """
        message = getattr(error, "message", None)
        if not isinstance(message, str) or "ValueError: " not in message:
            return None
        return ValueError(message.split("ValueError: ", 1)[1].split("\n")[0])

    def __iter__(self):
        """Iterate NumPy batches; a bad record raises a plain `ValueError`."""
        iterator = self.dataset.as_numpy_iterator()
        while True:
            try:
                yield next(iterator)
            except StopIteration:
                return
            except Exception as e:
                error = self.value_error(e)
                if error is None:
                    raise
                raise error from None
