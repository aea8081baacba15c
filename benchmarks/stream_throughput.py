"""Streaming input pipelines: decode + resize to 224 + batch, images per second.

Compares, on the same generated photographs (640x480 JPEGs, img2dataset tar
shards and a plain folder):

- `keras_mm.data.ImageTextDataset` (tf.data) from tar shards and from a folder;
- a plain single-process PIL loop (open, RGB, bicubic shortest side 224, centre
  crop, float32 [0, 1], stack into batches);
- a torch `DataLoader` with 2 workers over the shards, read the way open_clip's
  webdataset pipeline does (each worker its own shards, PIL decode, the same
  resize/crop, batched by the DataLoader). No torchvision: PIL + NumPy.

Usage: python benchmarks/stream_throughput.py [--images 2000] [--batch 64]
"""

import argparse
import io
import json
import os
import tarfile
import tempfile
import time

import numpy as np
from PIL import Image

SIZE = 224


def photo(rng, width=640, height=480):
    """A smooth random scene plus noise: JPEG-compresses like a photograph."""
    y, x = np.mgrid[0:height, 0:width].astype("float32")
    out = np.zeros((height, width, 3), "float32")
    for c in range(3):
        fx, fy, phase = rng.uniform(0.002, 0.03, 2).tolist() + [rng.uniform(0, 6)]
        out[..., c] = 127 + 100 * np.sin(fx * x + phase) * np.cos(fy * y)
    out += rng.normal(0, 12, out.shape)
    return Image.fromarray(np.clip(out, 0, 255).astype("uint8"))


def write_data(root, n, per_shard=500, size=(640, 480)):
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, "folder", "x"), exist_ok=True)
    num_shards = -(-n // per_shard)
    tar = None
    for i in range(n):
        if i % per_shard == 0:
            if tar:
                tar.close()
            tar = tarfile.open(os.path.join(root, f"s-{i // per_shard:05d}.tar"), "w")
        buf = io.BytesIO()
        photo(rng, *size).save(buf, format="JPEG", quality=90)
        data = buf.getvalue()
        with open(os.path.join(root, "folder", "x", f"{i:06d}.jpg"), "wb") as f:
            f.write(data)
        for name, payload in ((f"{i:06d}.jpg", data), (f"{i:06d}.txt", b"a photo")):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    tar.close()
    return os.path.join(root, "s-{00000..%05d}.tar" % (num_shards - 1))


def pil_preprocess(data):
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        w, h = img.size
        scale = SIZE / min(w, h)
        nw, nh = max(SIZE, round(w * scale)), max(SIZE, round(h * scale))
        img = img.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - SIZE) // 2, (nh - SIZE) // 2
        img = img.crop((left, top, left + SIZE, top + SIZE))
        return np.asarray(img, "float32") / 255.0


def tar_images(shards):
    for shard in shards:
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.name.endswith(".jpg"):
                    yield tar.extractfile(member).read()


def run_pil_loop(shards, batch):
    count, pending = 0, []
    for data in tar_images(shards):
        pending.append(pil_preprocess(data))
        if len(pending) == batch:
            np.stack(pending)
            count, pending = count + batch, []
    return count


def run_torch(shards, batch):
    import torch

    class Shards(torch.utils.data.IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            mine = shards[info.id :: info.num_workers] if info else shards
            for data in tar_images(mine):
                yield torch.from_numpy(pil_preprocess(data))

    loader = torch.utils.data.DataLoader(Shards(), batch_size=batch, num_workers=2)
    return sum(len(b) for b in loader)


def run_stream(source, batch, fmt):
    from keras_mm.data import ImageTextDataset

    stream = ImageTextDataset(
        source, format=fmt, batch_size=batch, image_size=SIZE,
        vocabulary=["[PAD]", "[UNK]", "a", "photo"], sequence_length=8,
        shuffle_buffer=256,
    )  # fmt: skip
    return sum(len(x["images"]) for x, _ in stream.dataset.as_numpy_iterator())


def timed(fn, *args):
    fn(*args)  # warm-up pass (tracing, page cache, worker start-up code paths)
    start = time.perf_counter()
    n = fn(*args)
    return n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        pattern = write_data(root, args.images)
        from keras_mm.data._stream_sources import expand_braces

        shards = expand_braces(pattern)
        results = {
            "pil_loop": timed(run_pil_loop, shards, args.batch),
            "torch_dataloader_2_workers": timed(run_torch, shards, args.batch),
            "keras_mm_tar": timed(run_stream, pattern, args.batch, "tar"),
            "keras_mm_folder": timed(
                run_stream, os.path.join(root, "folder"), args.batch, "folder"
            ),
        }
    results = {k: round(v, 1) for k, v in results.items()}
    results["load_average"] = os.getloadavg()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
