import json
import os

import keras

from keras_mm.api_export import keras_mm_export
from keras_mm.pretrained.clip_assembly import assemble_clip
from keras_mm.pretrained.hub_utils import resolve_checkpoint

LOCAL_EXAMPLE = (
    "keras_hub.models.CLIPBackbone.from_preset('clip_vit_base_patch16')"
    ".save_to_preset('/data/clip_b16'); keras_hub.models.CLIPPreprocessor"
    ".from_preset('clip_vit_base_patch16').save_to_preset('/data/clip_b16')\n"
    "    model, preprocessor = keras_mm.pretrained.clip_from_keras_hub("
    "'/data/clip_b16')"
)
BACKBONES = ("CLIPBackbone", "SigLIPBackbone")


def _local_config(path):
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        raise ValueError(
            f"{path!r} is not a keras-hub preset directory: it has no config.json. "
            "Make one with `backbone.save_to_preset(directory)`. Received: "
            f"preset={path!r}"
        )
    with open(config_path) as f:
        config = json.load(f)
    if "model_type" in config:
        raise ValueError(
            f"{path!r} holds a Hugging Face transformers checkpoint "
            f"(model_type={config['model_type']!r}), not a keras-hub preset. Load it "
            "with `keras_mm.pretrained.clip_from_huggingface(path)`. Received: "
            f"preset={path!r}"
        )
    name = str(config.get("registered_name", config.get("class_name", "")))
    if name.split(">")[-1] not in BACKBONES:
        raise ValueError(
            f"{path!r} is not a CLIP or SigLIP preset: its backbone is {name!r}; "
            f"expected one of {list(BACKBONES)}. For a single pretrained tower "
            "(ViT, BERT, ...) use `keras_mm.encoders.HubEncoder(backbone)` in "
            "`keras_mm.models.CLIP`. Received: preset="
            f"{path!r}"
        )


def _has_file(location, local, filename):
    if local:
        return os.path.isfile(os.path.join(location, filename))
    from keras_hub.src.utils.preset_utils import check_file_exists

    return check_file_exists(location, filename)


@keras_mm_export("keras_mm.pretrained.clip_from_keras_hub")
def clip_from_keras_hub(preset, load_weights=True, dtype=None, name=None):
    """Build a keras_mm `CLIP` from a keras-hub CLIP (or SigLIP) preset.

    Loads keras-hub's `CLIPBackbone` (or `SigLIPBackbone`) with `from_preset`,
    wraps its vision and text encoders in `keras_mm.encoders.HubEncoder`s (CLIP
    pools the class token of the image and the end-of-text token, the largest id,
    of the text; SigLIP's towers pool themselves) and writes its projection
    matrices and its learned temperature `logit_scale` (and SigLIP's
    `logit_bias`) into keras_mm's `CLIP`, so that the embeddings and logits equal
    keras-hub's. The model then trains with `compile(optimizer)` + `fit(x)` and
    saves to `.keras` like any keras_mm `CLIP`. The projection heads' biases are
    zero-initialised and trainable (keras-hub's projections have none).

    `preset` is a local directory made with `save_to_preset`, or a keras-hub
    preset name (`"clip_vit_base_patch16"`, `"kaggle://..."`, `"hf://..."`).
    Offline, a hub name is looked up in the local download caches and otherwise
    fails in under a second with a `ConnectionError` that says how to make a
    local preset directory (offline means no network, or `HF_HUB_OFFLINE`,
    `TRANSFORMERS_OFFLINE` or `KERAS_MM_OFFLINE` set).

    Images go in as the keras-hub backbone takes them: `(batch, H, W, 3)`,
    already resized and normalised (the preprocessor's image converter does it).

    Args:
        preset: str. A preset directory or a keras-hub preset name.
        load_weights: bool. False builds the architecture with random weights.
        dtype: dtype policy (e.g. `"bfloat16"`) for the towers and heads, or None.
        name: str or None. Name of the returned model.

    Returns:
        `(model, preprocessor)`: the keras_mm `CLIP` (`loss="clip"`, or
        `"siglip"` for a SigLIP preset) and the preset's keras-hub
        `CLIPPreprocessor` / `SigLIPPreprocessor` (strings to `token_ids` and
        `padding_mask`, images resized and rescaled), or None when the preset has
        no tokenizer.

    Example:

    >>> model, preprocessor = clip_from_keras_hub("./clip_b16")  # doctest: +SKIP
    >>> x = preprocessor({"prompts": ["a photo of a cat"],
    ...                   "images": images})  # doctest: +SKIP
    >>> model(x)["text_embeddings"]  # doctest: +SKIP

    Reference:
        keras-hub `CLIPBackbone` and `SigLIPBackbone`; Radford et al., 2021;
        Zhai et al., 2023.
    """
    location, local = resolve_checkpoint(preset, LOCAL_EXAMPLE)
    if local:
        _local_config(location)
    import keras_hub

    backbone = keras_hub.models.Backbone.from_preset(
        location, load_weights=load_weights, dtype=dtype
    )
    to_numpy = keras.ops.convert_to_numpy
    if isinstance(backbone, keras_hub.models.CLIPBackbone):
        heads = {
            "loss": "clip",
            "log_scale": to_numpy(backbone.clip_head.logit_scale),
            "image_projection": to_numpy(backbone.vision_projection.kernel),
            "text_projection": to_numpy(backbone.text_projection.kernel),
        }
        preprocessor_cls = keras_hub.models.CLIPPreprocessor
    elif isinstance(backbone, keras_hub.models.SigLIPBackbone):
        heads = {
            "loss": "siglip",
            "log_scale": to_numpy(backbone.siglip_head.logit_scale),
            "logit_bias": to_numpy(backbone.siglip_head.logit_bias),
        }
        preprocessor_cls = keras_hub.models.SigLIPPreprocessor
    else:
        raise ValueError(
            f"{preset!r} is not a CLIP or SigLIP preset: it loads a "
            f"{type(backbone).__name__}. Use `keras_mm.encoders.HubEncoder` for a "
            f"single tower. Received: preset={preset!r}"
        )
    model = assemble_clip(
        backbone.vision_encoder,
        backbone.text_encoder,
        dtype=dtype,
        name=name,
        **heads,
    )
    preprocessor = None
    if _has_file(location, local, "tokenizer.json"):
        preprocessor = preprocessor_cls.from_preset(location)
    return model, preprocessor
