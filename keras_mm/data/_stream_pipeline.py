"""Private: the tf.data pipeline of `ImageTextDataset` (imports TensorFlow).

One pass over the dataset is one epoch: a head element asks the stream for
`(iteration, epoch, skip)`, then the epoch's records are ordered from `(seed,
epoch)`, fetched and checked in Python, decoded and resized in parallel,
batched, tokenized and prefetched.
"""

import os

import numpy as np
import tensorflow as tf

from keras_mm.data._stream_images import BAD, decode, preprocess
from keras_mm.data._stream_tar import read_shard

PREFETCH_BATCHES = 2
# Samples per Python call of the tar generator: 3.25-3.35 ms CPU per image with
# 64 against 3.3-3.42 with 16 (benchmarks/RESULTS.md (c)).
TAR_CHUNK = 64


def columns(samples):
    """Samples `[(ref, data, text, error), ...]` as four object arrays."""
    return tuple(np.array(c, dtype=object) for c in zip(*samples))


@tf.autograph.experimental.do_not_convert
def records(stream, epoch, skip):
    """`(ref, image_bytes, text, group, error)` of one epoch, in order."""
    seed = tf.stack([tf.constant(stream.seed, tf.int64), epoch])
    if stream.records is not None:
        r = stream.records
        paths, texts = tf.constant(r.paths), tf.constant(r.texts)
        groups = tf.constant(np.asarray(r.groups, "int64"))
        order = tf.range(len(r.paths), dtype=tf.int64)
        if stream.shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed)
        ds = tf.data.Dataset.from_tensor_slices(order).skip(skip)
        empty = tf.constant(b"")
        return ds.map(lambda i: (paths[i], empty, texts[i], groups[i], empty))
    shards = tf.constant(stream.shards)
    order = tf.range(len(stream.shards), dtype=tf.int64)
    if stream.shuffle:
        order = tf.random.experimental.stateless_shuffle(order, seed)
    spec = (tf.TensorSpec((None,), tf.string),) * 4

    @tf.autograph.experimental.do_not_convert
    def one_shard(index):
        def gen(path):  # chunks of samples: one Python call per TAR_CHUNK samples
            chunk = []
            for sample in read_shard(path.decode("utf-8"), stream._max_bytes):
                if stream.keep is None or sample[3] or stream.keep(sample[0]):
                    chunk.append(sample)
                if len(chunk) == TAR_CHUNK:
                    yield columns(chunk)
                    chunk = []
            if chunk:
                yield columns(chunk)

        return tf.data.Dataset.from_generator(
            gen, output_signature=spec, args=(shards[index],)
        ).unbatch()

    cycle = min(len(stream.shards), 4)
    ds = tf.data.Dataset.from_tensor_slices(order).interleave(
        one_shard, cycle_length=cycle, num_parallel_calls=cycle, deterministic=True
    )
    if stream.shuffle:
        ds = block_shuffle(stream, ds, seed)
    no_group = tf.constant(-1, tf.int64)
    return ds.skip(skip).map(lambda ref, data, text, error: (
        ref, data, text, no_group, error))  # fmt: skip


def block_shuffle(stream, ds, seed):
    """Shuffle within consecutive blocks of `shuffle_buffer` samples.

    `Dataset.shuffle` takes no per-epoch seed tensor inside the pipeline, so
    each block is permuted statelessly from `(seed, epoch, block)`.
    """

    def permute(block, window):
        n = tf.shape(window[0], out_type=tf.int64)[0]
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n), seed + tf.stack([block * 7919, 0])
        )
        return tf.data.Dataset.from_tensor_slices(
            tuple(tf.gather(t, order) for t in window)
        )

    return (
        ds.batch(stream.shuffle_buffer)
        .enumerate()
        .flat_map(lambda block, window: permute(block, window))
    )


def loader(stream, iteration, epoch):
    def load(ref, data, text, group, error):
        data, branch = tf.numpy_function(
            stream._fetch, [iteration, ref, data, error], (tf.string, tf.int32)
        )
        branch.set_shape(())
        data.set_shape(())
        ok = tf.not_equal(branch, BAD)

        def image():
            pixels = decode(data, branch, stream.image_size)
            aug = None
            if stream.augment:
                aug = tf.stack(
                    [tf.strings.to_hash_bucket_fast(ref, 2**31), epoch]
                ) + tf.constant([0, stream.seed * 1_000_003], tf.int64)
            return preprocess(
                tf.cast(pixels, tf.float32), stream.image_size, stream.mean,
                stream.std, aug, stream.crop_scale,
            )  # fmt: skip

        blank = tf.zeros((stream.image_size, stream.image_size, 3), tf.float32)
        pixels = tf.cond(ok, image, lambda: blank)
        return {"images": pixels, "text": text, "group": group, "ref": ref, "ok": ok}

    return load


def tokenize(stream, batch):
    inputs = {"images": batch["images"]}
    if stream.tokenizer is not None:  # None: an image-only stream
        tokens = stream.tokenizer(batch["text"])
        if isinstance(tokens, dict):
            token_ids, mask = tokens["token_ids"], tokens["padding_mask"]
        else:
            token_ids, mask = tokens, tf.not_equal(tokens, 0)
        inputs["token_ids"] = tf.cast(token_ids, tf.int32)
        inputs["padding_mask"] = tf.cast(mask, tf.bool)
    group = batch["group"]
    size = tf.shape(group, out_type=tf.int64)[0]
    group = tf.where(group < 0, tf.range(size, dtype=tf.int64), group)
    if stream.with_refs:
        inputs["refs"] = batch["ref"]
    if stream.with_group_ids:
        return inputs, tf.cast(tf.unique(group)[1], tf.int32)
    return inputs


def counter(stream, iteration, key):
    def add(it, value):
        stream.counts.add(it, key, int(value))
        return np.int64(0)

    return lambda n: tf.numpy_function(add, [iteration, n], tf.int64)


def decode_parallelism():
    """Images decoded at once: one per core this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def epoch_dataset(stream, state):
    iteration, epoch, skip = state[0], state[1], state[2]
    ds = records(stream, epoch, skip).map(
        loader(stream, iteration, epoch), num_parallel_calls=decode_parallelism(),
        deterministic=True,
    )  # fmt: skip
    ds = ds.filter(lambda x: x["ok"])
    if stream.on_error == "skip":
        ds = ds.ignore_errors()  # graph decode errors: counted as undecodable
    ds = ds.map(lambda x: {k: v for k, v in x.items() if k != "ok"})
    delivered = counter(stream, iteration, "delivered")
    finished = counter(stream, iteration, "finished")

    def count(batch):
        with tf.control_dependencies([delivered(tf.shape(batch["group"])[0])]):
            return {k: tf.identity(v) for k, v in batch.items()}

    ds = ds.batch(stream.batch_size).map(count)
    if stream.drop_remainder:
        ds = ds.filter(lambda b: tf.shape(b["group"])[0] == stream.batch_size)
    size = stream.image_size

    def end(_):  # runs once the epoch's records are exhausted
        with tf.control_dependencies([finished(1)]):
            return {
                "images": tf.zeros((0, size, size, 3)),
                "text": tf.zeros((0,), tf.string),
                "group": tf.zeros((0,), tf.int64),
                "ref": tf.zeros((0,), tf.string),
            }

    tail = tf.data.Dataset.from_tensors(0).map(end)
    ds = ds.concatenate(tail.filter(lambda b: tf.shape(b["group"])[0] > 0))
    return ds.map(lambda b: tokenize(stream, b))


def build(stream):
    """The `tf.data.Dataset` of `stream`: each pass is one epoch."""
    head = tf.data.Dataset.from_tensors(0).map(
        lambda _: tf.numpy_function(stream._next_pass, [], tf.int64)
    )
    ds = head.flat_map(lambda s: epoch_dataset(stream, tf.reshape(s, [3])))
    # Fixed parallelism and buffers, no autotuning: memory stays flat, and on 2
    # idle cores tf.data's autotuner left about 4 passes in 10 at a fixed slower
    # rate (380 against 500-590 images/s, the decode threads idle half the time;
    # a plain read-decode-resize-batch pipeline does it too), whatever
    # `num_parallel_calls`; without it 16 passes in 16 ran fast
    # (benchmarks/RESULTS.md (c)).
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(PREFETCH_BATCHES).with_options(options)
