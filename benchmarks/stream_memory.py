"""Peak memory of one streamed training epoch over 10,000 and 40,000 JPEGs.

Writes N generated 256-px JPEGs into img2dataset tar shards (1,000 per shard),
then, in a fresh process per N, builds a small CLIP (conv image tower) and an
`ImageTextDataset` over the shards, fits two warm-up steps (compiling the train
step), returns freed heap to the OS (`malloc_trim`), records the resident set
size (VmRSS) as the baseline, resets the peak, fits one epoch, and reports the
peak (VmHWM) minus that baseline. A streamed epoch should need the same memory
whatever N is.

That growth includes the train step's own working memory (XLA's activation
and gradient buffers), which any `fit` needs, streamed or not. A control
process (`resident`) measures it: the same model, warm-up and baseline, then
an epoch of the same number of steps on one batch held in memory
(`Dataset.from_tensors(batch).repeat(steps)`, so Keras' data adapter is the
same). The streaming pipeline's own share is the streamed peak minus the
resident peak. The compile peak (VmHWM of the warm-up) is reported apart.

Usage: python benchmarks/stream_memory.py [--sizes 10000 40000] [--image-size 224]
"""

import argparse
import ctypes
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

import numpy as np
from PIL import Image


def status_mib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_shards(root, n, per_shard=1000):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (8, 8, 3)).astype("uint8")
    for s in range(-(-n // per_shard)):
        with tarfile.open(os.path.join(root, f"shard-{s:05d}.tar"), "w") as tar:
            for i in range(s * per_shard, min((s + 1) * per_shard, n)):
                tile = np.roll(base, i % 8, axis=i % 2)
                img = Image.fromarray(tile).resize((256, 256), Image.BICUBIC)
                buf = io.BytesIO()
                img.save(buf, format="JPEG", quality=85)
                text = f"a photo number {i % 100}".encode()
                for name, data in (
                    (f"{i:07d}.jpg", buf.getvalue()),
                    (f"{i:07d}.txt", text),
                ):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return os.path.join(root, "shard-{00000..%05d}.tar" % (-(-n // per_shard) - 1))


class Sampler:
    """VmRSS every 20 ms with the training step it fell in (set by a callback)."""

    def __init__(self):
        self.step, self.samples, self._stop = -1, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((status_mib("VmRSS"), self.step))
            time.sleep(0.02)

    def stop(self):
        self._stop.set()
        self._thread.join()
        during = sorted(r for r, s in self.samples if s >= 1)  # past the first step
        top = max(self.samples)
        return {"median_mib": during[len(during) // 2], "max_at_step": top[1]}


def child(pattern, image_size, batch, mode, steps):
    import keras
    import tensorflow as tf

    from keras_mm.cli.families import conv_image_encoder, text_encoder
    from keras_mm.data import ImageTextDataset
    from keras_mm.models import CLIP

    vocabulary = ["[PAD]", "[UNK]", "a", "photo", "number"] + [
        str(i) for i in range(100)
    ]
    stream = ImageTextDataset(
        pattern, batch_size=batch, image_size=image_size, vocabulary=vocabulary,
        sequence_length=8, shuffle_buffer=1000,
    )  # fmt: skip
    model = CLIP(
        conv_image_encoder((image_size, image_size, 3), 16),
        text_encoder(len(vocabulary), 8, 16),
        embed_dim=16,
    )
    model.compile(optimizer="adam")
    data, callbacks = stream.dataset, [stream.callback(False)]
    if mode == "resident":
        one = tf.nest.map_structure(lambda t: t.numpy(), next(iter(data.take(1))))
        data, callbacks = tf.data.Dataset.from_tensors(one).repeat(steps), []
    cold = status_mib("VmRSS")
    # Warm-up: two steps compile the train step and start tf.data's threads.
    model.fit(data.take(2), epochs=1, verbose=0)
    compile_peak = status_mib("VmHWM")
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # a baseline of memory in use
    baseline = status_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS (Linux)
    sampler = Sampler()

    class Step(keras.callbacks.Callback):
        def on_train_batch_begin(self, step, logs=None):
            sampler.step = step

        def on_train_batch_end(self, step, logs=None):
            self.done = step + 1

    if mode == "stream":
        stream.set_epoch(0)
    step = Step()
    model.fit(data, epochs=1, verbose=0, callbacks=callbacks + [step])
    peak = status_mib("VmHWM")
    print(json.dumps({
        "rss_before_compile_mib": cold, "compile_peak_mib": compile_peak,
        "baseline_mib": baseline, "peak_mib": peak, "steps": step.done,
        **sampler.stop(), "read": stream.records_read,
    }))  # fmt: skip


def run_child(pattern, args, mode, steps=0):
    out = subprocess.run(
        [sys.executable, __file__, "--child", pattern, str(args.image_size),
         str(args.batch), mode, str(steps)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["growth_mib"] = round(r["peak_mib"] - r["baseline_mib"], 1)
    return r


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 40_000])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--resident-steps", type=int, default=150)
    parser.add_argument("--child", nargs=5)
    args = parser.parse_args()
    if args.child:
        pattern, size, batch, mode, steps = args.child
        return child(pattern, int(size), int(batch), mode, int(steps))
    results = {}
    with tempfile.TemporaryDirectory() as root:
        pattern = write_shards(root, 2 * args.batch)
        r = run_child(pattern, args, "resident", args.resident_steps)
        results["resident"] = r
        print("resident", r, flush=True)
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as root:
            pattern = write_shards(root, n)
            r = run_child(pattern, args, "stream")
            r["streaming_share_mib"] = round(
                r["peak_mib"] - results["resident"]["peak_mib"], 1
            )
            results[n] = r
            print(n, r, flush=True)
    results["load_average"] = os.getloadavg()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
