"""Inference throughput: `encode_image` / `encode_text` vs keras-hub and open_clip.

Run by hand (not in CI), once per backend and configuration:

    KERAS_BACKEND=jax python benchmarks/encode_throughput.py --config small

The models are `clip_throughput.py`'s (`benchmarks/clip_models.py`, `tiny` or
`small`), untrained (throughput does not depend on the weights). Each round
encodes the same `--batches` x 256 images and as many texts, batch 256:

- keras_mm: `CLIP.encode_image(images, batch_size=256)` and
  `CLIP.encode_text({"token_ids", "padding_mask"}, batch_size=256)`, the public
  calls, as a user indexing a collection makes them (NumPy in, NumPy out).
- keras-hub: `CLIPBackbone.get_vision_embeddings` / `get_text_embeddings`
  L2-normalised, wrapped once in a functional `keras.Model` per tower and run
  with `predict(batch_size=256)` (keras-hub has no encode method; this is its
  fastest route, with compilation reused across calls).
- open_clip: `CLIP.encode_image` / `encode_text(normalize=True)` in `eval()`
  mode under `torch.inference_mode()`, a Python loop over batches of 256, once
  per torch thread count of `--open-clip-threads` (default 1 and 2: on a loaded
  machine one thread can be several times faster than two); the ratio compares
  with open_clip's fastest.

Every model is called once before the rounds (compilation); the rounds alternate
between the models; the tables give the median round. Throughput is items/s of
each tower, and pairs/s of both (N / (image time + text time)), per wall second
and per CPU second of the process. The last line,
`ratios: keras_mm/open_clip=X keras_mm/keras_hub=Y`, compares pairs/s.
`--dtype mixed_bfloat16` runs the keras models under that policy and open_clip
under `torch.autocast("cpu", torch.bfloat16)`.
"""

import argparse
import contextlib
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import clip_models  # noqa: E402

BATCH = 256


def keras_mm_encoders(cfg, images, tokens, dtype):
    model = clip_models.keras_mm_clip(cfg, dtype)
    text = {"token_ids": tokens, "padding_mask": np.ones_like(tokens, "bool")}
    return (
        model.count_params(),
        lambda: model.encode_image(images, batch_size=BATCH),
        lambda: model.encode_text(text, batch_size=BATCH),
    )


def keras_hub_encoders(cfg, images, tokens, dtype):
    import keras
    from keras import ops

    backbone = clip_models.keras_hub_backbone(cfg, dtype)

    def unit(x):
        return ops.normalize(ops.cast(x, "float32"), axis=-1)

    image_in = keras.Input(backbone.vision_encoder.image_shape, name="images")
    image_model = keras.Model(image_in, unit(backbone.get_vision_embeddings(image_in)))
    token_in = keras.Input((None,), dtype="int32", name="token_ids")
    text_model = keras.Model(token_in, unit(backbone.get_text_embeddings(token_in)))
    return (
        backbone.count_params(),
        lambda: image_model.predict(images, batch_size=BATCH, verbose=0),
        lambda: text_model.predict(tokens, batch_size=BATCH, verbose=0),
    )


def open_clip_encoders(cfg, images, tokens, dtype):
    import torch

    model = clip_models.open_clip_model(cfg).eval()
    im = torch.tensor(images).permute(0, 3, 1, 2).contiguous()
    tk = torch.tensor(tokens).long()

    def precision():
        if dtype == "mixed_bfloat16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def run(encode, x):
        with torch.inference_mode(), precision():
            out = [
                encode(x[i : i + BATCH], normalize=True)
                for i in range(0, len(x), BATCH)
            ]
            return torch.cat(out).float().numpy()

    return (
        clip_models.count_torch_params(model),
        lambda: run(model.encode_image, im),
        lambda: run(model.encode_text, tk),
    )


def timed(function):
    """(wall seconds, CPU seconds of the process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", choices=sorted(clip_models.CONFIGS), default="tiny")
    p.add_argument("--batches", type=int, default=4, help="batches of 256 per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--dtype", default=None, help="e.g. mixed_bfloat16")
    p.add_argument("--open-clip-threads", default="1,2")
    p.add_argument(
        "--metric",
        choices=("wall", "cpu"),
        default="wall",
        help="what the `ratios:` line compares: pairs per wall or CPU second",
    )
    p.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch threads of the keras models on the torch backend",
    )
    args = p.parse_args()
    cfg = clip_models.CONFIGS[args.config]
    import torch  # before TensorFlow (see STYLE.md)

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    print(f"torch threads: {torch.get_num_threads()}")
    import keras

    backend = keras.backend.backend()
    print(f"load before: {clip_models.uptime()}", flush=True)
    n = BATCH * args.batches
    images, tokens = clip_models.data(cfg, n)
    builders = [
        ("keras_mm CLIP", keras_mm_encoders),
        ("keras-hub CLIPBackbone", keras_hub_encoders),
    ]
    models = []
    for name, build in builders:
        params, encode_image, encode_text = build(cfg, images, tokens, args.dtype)
        encode_image(), encode_text()  # compile / warm up
        models.append((name, params, encode_image, encode_text))
    params, encode_image, encode_text = open_clip_encoders(
        cfg, images, tokens, args.dtype
    )
    for threads in clip_models.parse_threads(args.open_clip_threads):
        name = clip_models.open_clip_name(threads)
        image, text = (
            clip_models.with_torch_threads(threads, f)
            for f in (encode_image, encode_text)
        )
        image(), text()
        models.append((name, params, image, text))
    seconds = {name: {"image": [], "text": []} for name, *_ in models}  # (wall, cpu)
    for _ in range(args.rounds):
        for name, _, encode_image, encode_text in models:
            seconds[name]["image"].append(timed(encode_image))
            seconds[name]["text"].append(timed(encode_text))
    print(
        f"\nconfig={args.config} backend={backend} batch={BATCH} items={n} "
        f"rounds={args.rounds} dtype={args.dtype or 'float32'}"
    )
    print(
        "| model | params | images/s | texts/s | pairs/s | "
        "keras_mm / model (image, text, pairs) | pairs per CPU s | "
        "keras_mm / model (CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rates, cpu = {}, {}
    for name, params, *_ in models:
        image, text = (np.array(seconds[name][k]) for k in ("image", "text"))
        rates[name] = tuple(
            n / np.median(t) for t in (image[:, 0], text[:, 0], (image + text)[:, 0])
        )
        cpu[name] = n / np.median((image + text)[:, 1])
    ours = rates["keras_mm CLIP"]
    for name, params, *_ in models:
        r = rates[name]
        ratio = ", ".join(f"{a / b:.2f}" for a, b in zip(ours, r))
        print(
            f"| {name} | {params:,} | {r[0]:.1f} | {r[1]:.1f} | {r[2]:.1f} | "
            f"{ratio} | {cpu[name]:.1f} | {cpu['keras_mm CLIP'] / cpu[name]:.2f} |"
        )
    print(f"load after: {clip_models.uptime()}")
    if args.metric == "cpu":
        rates = {k: (0, 0, v) for k, v in cpu.items()}
        ours = rates["keras_mm CLIP"]
    oc = max(r[2] for name, r in rates.items() if name.startswith("open_clip"))
    hub = rates["keras-hub CLIPBackbone"][2]
    print(
        f"ratios: keras_mm/open_clip={ours[2] / oc:.2f} "
        f"keras_mm/keras_hub={ours[2] / hub:.2f}"
    )


if __name__ == "__main__":
    main()
