"""Training throughput: keras_mm CLIP vs keras-hub CLIPBackbone vs open_clip.

Run by hand (not in CI), once per backend and configuration:

    KERAS_BACKEND=jax python benchmarks/clip_throughput.py --config small
    KERAS_BACKEND=torch python benchmarks/clip_throughput.py --config tiny

open_clip's `CLIP` trains in the same process, on any backend (`--no-open-clip`
leaves it out), once per torch thread count of `--open-clip-threads` (default
1 and 2). On a loaded machine torch's OpenMP threads wait on each other, and a
single thread can be several times faster than two; the ratio compares with
open_clip's fastest setting. The keras models keep torch's default threads.

Identical configuration for every model (`benchmarks/clip_models.py`):
`--config tiny` (issue 7): ViT 32 px, patch 8, width 128, 2 layers, 4 heads,
MLP 512; text context 16, vocab 1,000, width 128, 2 layers; embed 64; batch 64.
`--config small` (issue 18): ViT 64 px, patch 8 (65 tokens), width 256, 4
layers, 4 heads, MLP 1,024; text context 32, vocab 8,192, width 256, 4 layers,
causal; embed 256; batch 128. AdamW (lr 1e-4); the same loss
(`keras_mm.losses.clip_loss` on the scaled logits; open_clip's own `ClipLoss`,
which is the same equation). Parameter counts are printed to show the sizes
match. Throughput is samples/s over `--steps` timed steps after `--warmup`
steps (the first includes compilation), in `--rounds` rounds that alternate
between the models; the table gives each model's median round, per wall second
and per CPU second of the process (all its threads; on a loaded machine the
wall rate depends on the load, the CPU rate much less, but it counts threads
that spin while waiting). keras models
train with `fit`. The last line is `ratios: keras_mm/open_clip=X
keras_mm/keras_hub=Y` of the medians.

`--dtype mixed_bfloat16` trains the keras models under that policy and open_clip
under `torch.autocast("cpu", torch.bfloat16)` (the same precision for all);
`--jit-compile` and `--steps-per-execution` are passed to every keras
`compile`. These are for profiling; the tables in RESULTS.md use the defaults
unless they say otherwise.
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

# (steps, warmup, rounds) when not given: the small configuration's steps take
# seconds on 2 cores.
DEFAULT_STEPS = {"tiny": (20, 3, 5), "small": (4, 1, 3)}


def keras_runner(model, inputs, batch, args):
    """Compile `model`; return a function that trains one round, giving samples/s."""
    import keras

    model.compile(
        optimizer=keras.optimizers.AdamW(1e-4),
        jit_compile=args.jit_compile,
        steps_per_execution=args.steps_per_execution,
    )
    marks = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            marks.append(clock())

    def run_round():
        marks.clear()
        model.fit(
            inputs,
            batch_size=batch,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[Clock()],
        )
        # One mark per execution of `steps_per_execution` steps.
        warmup = max(1, -(-args.warmup // args.steps_per_execution))
        return rate(marks, warmup, batch * args.steps_per_execution)

    return run_round


def clock():
    """(wall seconds, CPU seconds of this process: every thread's)."""
    return time.perf_counter(), time.process_time()


def rate(marks, warmup, samples_per_mark):
    """(samples per wall second, per CPU second) from mark `warmup` to the last."""
    timed = marks[warmup - 1 :]
    samples = samples_per_mark * (len(timed) - 1)
    return tuple(samples / (b - a) for a, b in zip(timed[0], timed[-1]))


def open_clip_runner(cfg, images, tokens, args):
    """open_clip's CLIP + ClipLoss + AdamW: (params, function training one round)."""
    import torch

    open_clip = clip_models.import_open_clip()
    model = clip_models.open_clip_model(cfg)
    loss_fn = open_clip.ClipLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    im = torch.tensor(images).permute(0, 3, 1, 2).contiguous()
    tk = torch.tensor(tokens).long()
    batch = cfg["batch"]

    def precision():
        if args.dtype == "mixed_bfloat16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def run_round():
        marks = []
        for i in range(args.warmup + args.steps):
            sl = slice(i * batch, (i + 1) * batch)
            with precision():
                out = model(im[sl], tk[sl])
                features = (out["image_features"], out["text_features"])
                loss = loss_fn(*features, out["logit_scale"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            marks.append(clock())
        return rate(marks, args.warmup, batch)

    return clip_models.count_torch_params(model), run_round


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", choices=sorted(clip_models.CONFIGS), default="tiny")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--open-clip", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--open-clip-threads", default="1,2")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch threads of the keras models on the torch backend",
    )
    p.add_argument("--dtype", default=None, help="e.g. mixed_bfloat16")
    p.add_argument("--jit-compile", default="auto")
    p.add_argument("--steps-per-execution", type=int, default=1)
    p.add_argument(
        "--metric",
        choices=("wall", "cpu"),
        default="wall",
        help="what the `ratios:` line compares: samples per wall or CPU second",
    )
    args = p.parse_args()
    steps, warmup, rounds = DEFAULT_STEPS[args.config]
    args.steps = steps if args.steps is None else args.steps
    args.warmup = warmup if args.warmup is None else args.warmup
    args.rounds = rounds if args.rounds is None else args.rounds
    if args.jit_compile != "auto":
        args.jit_compile = args.jit_compile.lower() in ("1", "true", "yes")
    # Whole executions only, so every timed mark covers the same steps.
    spe = args.steps_per_execution
    args.warmup = -(-args.warmup // spe) * spe
    args.steps = -(-args.steps // spe) * spe
    return args


def main():
    args = parse_args()
    cfg = clip_models.CONFIGS[args.config]
    batch = cfg["batch"]
    if args.open_clip or args.torch_threads:
        import torch  # before TensorFlow (see STYLE.md)

        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        print(f"torch threads: {torch.get_num_threads()}")
    import keras

    backend = keras.backend.backend()
    print(f"load before: {clip_models.uptime()}", flush=True)
    images, tokens = clip_models.data(cfg, batch * (args.warmup + args.steps))

    mm = clip_models.keras_mm_clip(cfg, args.dtype)
    mm_inputs = clip_models.keras_mm_inputs(mm, images, tokens)
    hub, backbone = clip_models.keras_hub_clip(cfg, args.dtype)
    hub_inputs = {"images": images, "token_ids": tokens}
    models = [
        ("keras_mm CLIP", mm.count_params(), keras_runner(mm, mm_inputs, batch, args)),
        (
            "keras-hub CLIPBackbone",
            backbone.count_params(),
            keras_runner(hub, hub_inputs, batch, args),
        ),
    ]
    if args.open_clip:
        params, runner = open_clip_runner(cfg, images, tokens, args)
        for threads in clip_models.parse_threads(args.open_clip_threads):
            name = clip_models.open_clip_name(threads)
            models.append(
                (name, params, clip_models.with_torch_threads(threads, runner))
            )
    # Rounds alternate between the models, so a change in the machine's load
    # during the run reaches every model alike; each round's first steps (the
    # first round's include compilation) are not timed.
    speeds = {name: [] for name, _, _ in models}
    for _ in range(args.rounds):
        for name, _, run_round in models:
            speeds[name].append(run_round())
    # Medians of wall and CPU throughput, each over the rounds.
    median = {n: float(np.median([w for w, _ in v])) for n, v in speeds.items()}
    cpu = {n: float(np.median([c for _, c in v])) for n, v in speeds.items()}
    print(
        f"\nconfig={args.config} backend={backend} batch={batch} "
        f"steps={args.steps} warmup={args.warmup} rounds={args.rounds} "
        f"dtype={args.dtype or 'float32'} jit_compile={args.jit_compile} "
        f"steps_per_execution={args.steps_per_execution}"
    )
    print(
        "| model | params | samples/s (median) | rounds | keras_mm / model | "
        "samples per CPU s (median) | keras_mm / model (CPU) |"
    )
    print("|---|---|---|---|---|---|---|")
    ours, ours_cpu = median["keras_mm CLIP"], cpu["keras_mm CLIP"]
    for name, params, _ in models:
        rounds = ", ".join(f"{w:.1f}" for w, _ in speeds[name])
        print(
            f"| {name} | {params:,} | {median[name]:.1f} | {rounds} | "
            f"{ours / median[name]:.2f} | {cpu[name]:.1f} | "
            f"{ours_cpu / cpu[name]:.2f} |"
        )
    if args.metric == "cpu":
        median, ours = cpu, ours_cpu
    print(f"load after: {clip_models.uptime()}")
    oc = [v for name, v in median.items() if name.startswith("open_clip")]
    oc = f"{ours / max(oc):.2f}" if oc else "n/a"
    print(
        f"ratios: keras_mm/open_clip={oc} "
        f"keras_mm/keras_hub={ours / median['keras-hub CLIPBackbone']:.2f}"
    )


if __name__ == "__main__":
    main()
