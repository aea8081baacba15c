"""The three CLIPs the throughput benchmarks compare, at one named configuration.

Shared by `clip_throughput.py` (training) and `encode_throughput.py` (inference).
Every model gets the same configuration: a ViT with a class token, quick-GELU,
LayerNorm epsilon 1e-5, pre-LN blocks; a causal text transformer pooled at one
token (keras_mm: the last real token; keras-hub: the argmax token id; open_clip:
the argmax token id; the same cost); linear projections to `embed`.
"""

import sys
import types

import numpy as np

CONFIGS = {
    # Issue 7's configuration: 2 blocks per tower.
    "tiny": dict(
        image=32,
        patch=8,
        width=128,
        layers=2,
        heads=4,
        mlp=512,
        context=16,
        vocab=1000,
        embed=64,
        batch=64,
    ),
    # Issue 18's: 65 image tokens, 4 blocks per tower.
    "small": dict(
        image=64,
        patch=8,
        width=256,
        layers=4,
        heads=4,
        mlp=1024,
        context=32,
        vocab=8192,
        embed=256,
        batch=128,
    ),
}


def data(cfg, n, seed=0):
    """`n` random images `(n, H, W, 3)` float32 and token ids `(n, T)` int32."""
    rng = np.random.default_rng(seed)
    size = cfg["image"]
    images = rng.uniform(size=(n, size, size, 3)).astype("float32")
    tokens = rng.integers(1, cfg["vocab"], size=(n, cfg["context"])).astype("int32")
    return images, tokens


def keras_mm_clip(cfg, dtype=None):
    from keras_mm.encoders import ImageEncoder, TextEncoder
    from keras_mm.models import CLIP

    # What both towers share: keras-hub's CLIP sizes, quick-GELU, epsilon 1e-5.
    tower = dict(
        hidden_dim=cfg["width"],
        num_layers=cfg["layers"],
        num_heads=cfg["heads"],
        intermediate_dim=cfg["mlp"],
        activation="quick_gelu",
        layer_norm_epsilon=1e-5,
        dtype=dtype,
    )
    image = ImageEncoder(
        image_shape=(cfg["image"], cfg["image"], 3), patch_size=cfg["patch"], **tower
    )
    text = TextEncoder(
        vocabulary_size=cfg["vocab"],
        max_sequence_length=cfg["context"],
        causal=True,
        pooling="last",
        **tower,
    )
    return CLIP(image, text, embed_dim=cfg["embed"], loss="clip", dtype=dtype)


def keras_mm_inputs(model, images, tokens):
    inputs = {
        "images": images,
        "token_ids": tokens,
        "padding_mask": np.ones_like(tokens, "bool"),
    }
    return {k: v for k, v in inputs.items() if k in model.input}


def keras_hub_backbone(cfg, dtype=None):
    import keras_hub

    tower = dict(
        hidden_dim=cfg["width"],
        num_layers=cfg["layers"],
        num_heads=cfg["heads"],
        intermediate_dim=cfg["mlp"],
        dtype=dtype,
    )
    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=cfg["patch"], image_shape=(cfg["image"], cfg["image"], 3), **tower
    )
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=cfg["vocab"],
        embedding_dim=cfg["width"],
        max_sequence_length=cfg["context"],
        **tower,
    )
    return keras_hub.models.CLIPBackbone(
        vision, text, projection_dim=cfg["embed"], dtype=dtype
    )


def keras_hub_clip(cfg, dtype=None):
    """(trainable model, backbone): CLIPBackbone trained with keras_mm's clip_loss."""
    import keras

    from keras_mm.losses import clip_loss

    backbone = keras_hub_backbone(cfg, dtype)

    class HubCLIP(keras.Model):
        """CLIPBackbone trained with keras_mm's clip_loss on its logits."""

        def __init__(self):
            inputs = dict(backbone.input)
            outputs = backbone(inputs)["vision_logits"]
            super().__init__(inputs, outputs)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, **kw):
            return clip_loss(y_pred)

    return HubCLIP(), backbone


def import_open_clip():
    """`open_clip`, with stubs for the torchvision and transformers it imports."""

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

    return open_clip


def open_clip_model(cfg):
    """open_clip's `CLIP` at `cfg` (quick-GELU, output dict)."""
    import_open_clip()
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    vision = CLIPVisionCfg(
        layers=cfg["layers"],
        width=cfg["width"],
        head_width=cfg["width"] // cfg["heads"],
        mlp_ratio=cfg["mlp"] / cfg["width"],
        patch_size=cfg["patch"],
        image_size=cfg["image"],
    )
    text = CLIPTextCfg(
        context_length=cfg["context"],
        vocab_size=cfg["vocab"],
        width=cfg["width"],
        heads=cfg["heads"],
        layers=cfg["layers"],
        mlp_ratio=cfg["mlp"] / cfg["width"],
    )
    return CLIP(cfg["embed"], vision, text, quick_gelu=True, output_dict=True)


def count_torch_params(model):
    return sum(p.numel() for p in model.parameters())


def uptime():
    """The machine's load averages (1, 5, 15 min) as a string."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def parse_threads(text):
    """`"1,2"` -> `[1, 2]`; `""` or `"default"` -> `[None]` (torch's default)."""
    if text in ("", "default"):
        return [None]
    return [int(t) for t in text.split(",")]


def with_torch_threads(threads, function):
    """`function` run with `torch.set_num_threads(threads)` (None: unchanged)."""
    import torch

    def run(*args, **kwargs):
        before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return run


def open_clip_name(threads):
    import torch

    threads = torch.get_num_threads() if threads is None else threads
    return f"open_clip CLIP ({threads} thread{'s' if threads > 1 else ''})"
