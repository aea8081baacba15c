"""Does tf.data's autotuner still leave some passes at a slower, fixed rate?

A plain pipeline with none of keras_mm's code: read a folder of 640x480 JPEGs,
decode (`ratio=2`), bicubic resize to 224 x 299, crop, batch 64, prefetch 2.
It prints images/s of each pass over the folder, with `Options.autotune` on
and off. On 2 idle cores (TensorFlow 2.21) 3-7 passes in 10 ran at a fixed
~784 img/s with autotuning on, none with it off (benchmarks/RESULTS.md (c)):
why `ImageTextDataset` turns it off. Rerun after a TensorFlow upgrade.

Usage: python benchmarks/tf_data_autotune_modes.py [--images 2000] [--passes 10]
"""

import argparse
import glob
import os
import tempfile
import time

import tensorflow as tf
from stream_throughput import write_data


def load(path):
    image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3, ratio=2)
    image = tf.image.resize(tf.cast(image, tf.float32), (224, 299), method="bicubic")
    return image[:, 37:261] / 255.0


def passes(files, autotune, num_passes):
    ds = tf.data.Dataset.from_tensor_slices(files).map(
        load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    options = tf.data.Options()
    options.autotune.enabled = autotune
    ds = ds.batch(64).prefetch(2).with_options(options)
    rates = []
    for _ in range(num_passes + 1):  # the first pass warms up
        start = time.perf_counter()
        n = sum(len(batch) for batch in ds.as_numpy_iterator())
        rates.append(round(n / (time.perf_counter() - start), 1))
    return rates[1:]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--passes", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        write_data(root, args.images)
        files = sorted(glob.glob(os.path.join(root, "folder", "x", "*.jpg")))
        for autotune in (True, False):
            rates = passes(files, autotune, args.passes)
            print(f"autotune {'on ' if autotune else 'off'}: img/s per pass {rates}")
    print("load average:", os.getloadavg())


if __name__ == "__main__":
    main()
