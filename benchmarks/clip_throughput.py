"""Training throughput: keras_mm CLIP vs keras-hub CLIPBackbone (vs open_clip).

Run by hand (not in CI), once per backend:

    KERAS_BACKEND=jax python benchmarks/clip_throughput.py --open-clip
    KERAS_BACKEND=torch python benchmarks/clip_throughput.py --open-clip

`--open-clip` also trains open_clip's `CLIP` (torch, its default thread count) in
the same process, on any backend.

Identical configuration for every model (issue 7): ViT 32 px, patch 8, width 128,
2 layers, 4 heads, MLP 512; text context 16, vocab 1,000, width 128, 2 layers,
4 heads, MLP 512; embed 64; batch 64; AdamW (lr 1e-4); the same loss
(`keras_mm.losses.clip_loss` on the scaled logits; open_clip's own `ClipLoss`,
which is the same equation). Parameter counts are printed to show the sizes
match. Throughput is samples/s over `--steps` timed steps after `--warmup`
steps (the first includes compilation), in `--rounds` rounds that alternate
between the models; the table gives each model's median round. keras models
train with `fit`.
"""

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CFG = dict(
    image=32, patch=8, width=128, layers=2, heads=4, mlp=512, context=16, vocab=1000
)
EMBED, BATCH = 64, 64


def data(steps):
    rng = np.random.default_rng(0)
    n = BATCH * steps
    images = rng.uniform(size=(n, CFG["image"], CFG["image"], 3)).astype("float32")
    tokens = rng.integers(1, CFG["vocab"], size=(n, CFG["context"])).astype("int32")
    return images, tokens


def keras_mm_clip():
    from keras_mm.encoders import ImageEncoder, TextEncoder
    from keras_mm.models import CLIP

    image = ImageEncoder(
        image_shape=(CFG["image"], CFG["image"], 3),
        patch_size=CFG["patch"],
        hidden_dim=CFG["width"],
        num_layers=CFG["layers"],
        num_heads=CFG["heads"],
        intermediate_dim=CFG["mlp"],
        activation="quick_gelu",
        layer_norm_epsilon=1e-5,
    )
    text = TextEncoder(
        vocabulary_size=CFG["vocab"],
        max_sequence_length=CFG["context"],
        hidden_dim=CFG["width"],
        num_layers=CFG["layers"],
        num_heads=CFG["heads"],
        intermediate_dim=CFG["mlp"],
        activation="quick_gelu",
        layer_norm_epsilon=1e-5,
        causal=True,
        pooling="last",
    )
    return CLIP(image, text, embed_dim=EMBED, loss="clip")


def keras_hub_clip():
    import keras
    import keras_hub

    from keras_mm.losses import clip_loss

    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=CFG["patch"],
        hidden_dim=CFG["width"],
        num_layers=CFG["layers"],
        num_heads=CFG["heads"],
        intermediate_dim=CFG["mlp"],
        image_shape=(CFG["image"], CFG["image"], 3),
    )
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=CFG["vocab"],
        embedding_dim=CFG["width"],
        hidden_dim=CFG["width"],
        num_layers=CFG["layers"],
        num_heads=CFG["heads"],
        intermediate_dim=CFG["mlp"],
        max_sequence_length=CFG["context"],
    )
    backbone = keras_hub.models.CLIPBackbone(vision, text, projection_dim=EMBED)

    class HubCLIP(keras.Model):
        """CLIPBackbone trained with keras_mm's clip_loss on its logits."""

        def __init__(self):
            inputs = dict(backbone.input)
            outputs = backbone(inputs)["vision_logits"]
            super().__init__(inputs, outputs)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, **kw):
            return clip_loss(y_pred)

    return HubCLIP(), backbone


def keras_runner(model, inputs, args):
    """Compile `model`; return a function that trains one round, giving samples/s."""
    import keras

    model.compile(optimizer=keras.optimizers.AdamW(1e-4))
    marks = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            marks.append(time.perf_counter())

    def run_round():
        marks.clear()
        model.fit(
            inputs,
            batch_size=BATCH,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[Clock()],
        )
        return rate(marks, args.warmup)

    return run_round


def rate(marks, warmup):
    """Samples/s between the end of step `warmup` and the end of the last step."""
    timed = marks[warmup - 1 :]
    return BATCH * (len(timed) - 1) / (timed[-1] - timed[0])


def open_clip_runner(images, tokens, args):
    """open_clip's CLIP + ClipLoss + AdamW: (params, function training one round)."""
    import types

    class _Any:  # open_clip imports torchvision only for transforms/utils
        def __init__(self, *a, **k):
            pass

        def __getattr__(self, name):
            return _Any()

        def __call__(self, *a, **k):
            return _Any()

        def __mro_entries__(self, bases):  # `class X(torchvision.Thing)`
            return (object,)

    def _stub_attribute(attr):
        if attr.startswith("__"):  # `inspect` asks modules for `__file__`
            raise AttributeError(attr)
        return _Any()

    names = (
        "torchvision",
        "torchvision.transforms",
        "torchvision.transforms.functional",
        "torchvision.ops",
        "torchvision.ops.misc",
    )
    for name in names:
        module = types.ModuleType(name)
        module.__getattr__ = _stub_attribute
        sys.modules.setdefault(name, module)
    for name in names[1:]:  # `import a.b.c as F` looks up attributes
        parent, child = name.rsplit(".", 1)
        setattr(sys.modules[parent], child, sys.modules[name])
    sys.modules.setdefault("transformers", None)  # open_clip's HF towers: unused
    import open_clip
    import torch
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    vision = CLIPVisionCfg(
        layers=CFG["layers"],
        width=CFG["width"],
        head_width=CFG["width"] // CFG["heads"],
        mlp_ratio=CFG["mlp"] / CFG["width"],
        patch_size=CFG["patch"],
        image_size=CFG["image"],
    )
    text = CLIPTextCfg(
        context_length=CFG["context"],
        vocab_size=CFG["vocab"],
        width=CFG["width"],
        heads=CFG["heads"],
        layers=CFG["layers"],
        mlp_ratio=CFG["mlp"] / CFG["width"],
    )
    model = CLIP(EMBED, vision, text, quick_gelu=True, output_dict=True)
    loss_fn = open_clip.ClipLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    params = sum(p.numel() for p in model.parameters())
    im = torch.tensor(images).permute(0, 3, 1, 2).contiguous()
    tk = torch.tensor(tokens).long()

    def run_round():
        marks = []
        for i in range(args.warmup + args.steps):
            sl = slice(i * BATCH, (i + 1) * BATCH)
            out = model(im[sl], tk[sl])
            features = (out["image_features"], out["text_features"])
            loss = loss_fn(*features, out["logit_scale"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            marks.append(time.perf_counter())
        return rate(marks, args.warmup)

    return params, run_round


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--open-clip", action="store_true")
    args = p.parse_args()
    if args.open_clip:
        import torch  # before TensorFlow (see STYLE.md)

        print(f"torch threads: {torch.get_num_threads()}")
    import keras

    backend = keras.backend.backend()
    images, tokens = data(args.warmup + args.steps)

    mm = keras_mm_clip()
    mm_inputs = {
        "images": images,
        "token_ids": tokens,
        "padding_mask": np.ones_like(tokens, "bool"),
    }
    mm_inputs = {k: v for k, v in mm_inputs.items() if k in mm.input}
    hub, backbone = keras_hub_clip()
    hub_inputs = {"images": images, "token_ids": tokens}
    models = [
        ("keras_mm CLIP", mm.count_params(), keras_runner(mm, mm_inputs, args)),
        (
            "keras-hub CLIPBackbone",
            backbone.count_params(),
            keras_runner(hub, hub_inputs, args),
        ),
    ]
    if args.open_clip:
        models.append(("open_clip CLIP", *open_clip_runner(images, tokens, args)))
    # Rounds alternate between the models, so a change in the machine's load
    # during the run reaches every model alike; each round's first steps (the
    # first round's include compilation) are not timed.
    speeds = {name: [] for name, _, _ in models}
    for _ in range(args.rounds):
        for name, _, run_round in models:
            speeds[name].append(run_round())
    median = {name: float(np.median(v)) for name, v in speeds.items()}
    print(f"\nbackend={backend} batch={BATCH} steps={args.steps} rounds={args.rounds}")
    print("| model | params | samples/s (median) | rounds | keras_mm / model |")
    print("|---|---|---|---|---|")
    ours = median["keras_mm CLIP"]
    for name, params, _ in models:
        rounds = ", ".join(f"{v:.0f}" for v in speeds[name])
        print(
            f"| {name} | {params:,} | {median[name]:.1f} | {rounds} | "
            f"{ours / median[name]:.2f} |"
        )


if __name__ == "__main__":
    main()
