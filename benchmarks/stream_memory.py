"""Peak memory of one streamed training epoch over 10,000 and 40,000 JPEGs.

Writes N generated 256-px JPEGs into img2dataset tar shards (1,000 per shard),
then, in a fresh process per N, builds a small CLIP (conv image tower) and an
`ImageTextDataset` over the shards, fits two warm-up steps (compiling the train
step), records the resident set size (VmRSS), resets the peak, fits one epoch,
and reports the peak (VmHWM) minus that baseline. A streamed epoch
should need the same memory whatever N is.

Usage: python benchmarks/stream_memory.py [--sizes 10000 40000] [--image-size 224]
"""

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile

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


def child(pattern, image_size, batch):

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
    cold = status_mib("VmRSS")
    # Warm-up: two steps compile the train step and start tf.data's threads.
    model.fit(stream.dataset.take(2), epochs=1, verbose=0)
    baseline = status_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS (Linux)
    stream.set_epoch(0)
    model.fit(stream.dataset, epochs=1, verbose=0, callbacks=[stream.callback(False)])
    peak = status_mib("VmHWM")
    print(json.dumps({
        "rss_before_compile_mib": cold, "baseline_mib": baseline, "peak_mib": peak,
        "read": stream.records_read,
    }))  # fmt: skip


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 40_000])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]), int(args.child[2]))
    results = {}
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as root:
            pattern = write_shards(root, n)
            out = subprocess.run(
                [sys.executable, __file__, "--child", pattern, str(args.image_size),
                 str(args.batch)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["growth_mib"] = round(r["peak_mib"] - r["baseline_mib"], 1)
            results[n] = r
            print(n, r, flush=True)
    results["load_average"] = os.getloadavg()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
