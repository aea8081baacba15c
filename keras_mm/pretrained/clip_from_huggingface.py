import os
import re

from keras_mm.api_export import keras_mm_export
from keras_mm.pretrained.clip_assembly import assemble_clip
from keras_mm.pretrained.hf_checkpoint import read_checkpoint
from keras_mm.pretrained.hf_preprocessor import (
    clip_preprocessor,
    siglip_preprocessor,
)
from keras_mm.pretrained.hf_towers import clip_towers, siglip_towers
from keras_mm.pretrained.hub_utils import resolve_checkpoint

LOCAL_EXAMPLE = (
    "huggingface_hub.snapshot_download('openai/clip-vit-base-patch32', "
    "local_dir='/data/clip-b32')\n"
    "    model, preprocessor = keras_mm.pretrained.clip_from_huggingface("
    "'/data/clip-b32')"
)
# Only transformers' own weights: repositories such as LAION's also hold OpenCLIP
# files (open_clip_model.safetensors) that would double the download.
FILES = [
    "config.json",
    "model.safetensors",
    "model-*.safetensors",
    "model.safetensors.index.json",
    "vocab.json",
    "merges.txt",
    "preprocessor_config.json",
    "spiece.model",
]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _download(handle):
    import huggingface_hub

    return huggingface_hub.snapshot_download(
        handle.split("://", 1)[1], allow_patterns=FILES
    )


@keras_mm_export("keras_mm.pretrained.clip_from_huggingface")
def clip_from_huggingface(path, dtype=None, name=None):
    """Convert a Hugging Face `CLIPModel` (or `SiglipModel`) checkpoint to keras_mm.

    Reads `config.json` and the `safetensors` weights with NumPy (no torch, on
    every Keras backend), writes them into keras-hub's `CLIPVisionEncoder` /
    `CLIPTextEncoder` (the same architecture: patch convolution, class token,
    pre- and post-layer norms, quick-GELU blocks; causal text transformer pooled
    at the end-of-text token), wrapped in `ConvertedHubEncoder`s that keep
    Hugging Face's layer-norm epsilon, and puts `visual_projection`,
    `text_projection` and `logit_scale` into keras_mm's `CLIP` head. Embeddings
    and logits then equal `transformers`' (`image_embeds`, `text_embeds`,
    `logits_per_image`). A `SiglipModel` checkpoint gives a `CLIP` with
    `loss="siglip"` on keras-hub's SigLIP towers (attention-pooling image head,
    last-token text head), its `logit_scale` and `logit_bias`.

    Differences to know:

    - Images are channels-last `(batch, H, W, 3)`: transpose `pixel_values`
      `(batch, 3, H, W)` with `(0, 2, 3, 1)`.
    - CLIP's text tower pools the largest token id, which is the end-of-text
      token when `eos_token_id` is the vocabulary's last id (every OpenAI and
      OpenCLIP checkpoint) or the legacy 2; other ids raise an error. Padding
      after that token changes nothing (the mask is causal).
    - SigLIP's text tower takes exactly `max_position_embeddings` tokens (pad
      to length, as SigLIP is trained). SigLIP 2 (`model_type="siglip2"`, a
      different patch embedding) is not supported.
    - The projection heads' biases (zero) and SigLIP's identity projections are
      extra trainable weights of keras_mm's `CLIP`; they start as a no-op.

    `path` is a local checkpoint directory, or a Hugging Face repository
    (`"hf://openai/clip-vit-base-patch32"` or `"openai/clip-vit-base-patch32"`),
    downloaded with `huggingface_hub`. Offline (no network, or
    `HF_HUB_OFFLINE`, `TRANSFORMERS_OFFLINE`, `KERAS_MM_OFFLINE` set) a
    repository is taken from the Hugging Face cache when it is there, and
    otherwise fails in under a second with a `ConnectionError` that says what to
    do.

    Args:
        path: str. A checkpoint directory or a Hugging Face repository id.
        dtype: dtype policy for the towers and heads (e.g. `"bfloat16"`), or
            None (float32).
        name: str or None. Name of the returned model.

    Returns:
        `(model, preprocessor)`: the keras_mm `CLIP` and, for a CLIP checkpoint
        with `vocab.json` and `merges.txt`, a keras-hub `CLIPPreprocessor` (the
        same BPE token ids as `transformers`' `CLIPTokenizer`; images resized and
        normalised with the checkpoint's mean and standard deviation), for a
        SigLIP checkpoint with `spiece.model` a `SigLIPPreprocessor`, else None.

    Example:

    >>> model, preprocessor = clip_from_huggingface("./clip-b32")  # doctest: +SKIP
    >>> out = model(preprocessor({"prompts": ["a photo of a cat"],
    ...                           "images": images}))  # doctest: +SKIP

    Reference:
        `transformers` `CLIPModel` and `SiglipModel`; Radford et al., 2021;
        Zhai et al., 2023.
    """
    if (
        isinstance(path, str)
        and "://" not in path
        and not os.path.exists(os.path.expanduser(path))
        and _REPO_ID.match(path)
    ):
        path = "hf://" + path
    location, local = resolve_checkpoint(path, LOCAL_EXAMPLE, FILES)
    if not local:
        if not location.startswith("hf://"):
            raise ValueError(
                f"{path!r} is not a Hugging Face checkpoint; for a keras-hub preset "
                "use `keras_mm.pretrained.clip_from_keras_hub`. Received: "
                f"path={path!r}"
            )
        location = _download(location)
    config, tensors = read_checkpoint(location)
    model_type = config.get("model_type")
    source = f"The checkpoint {path!r}"
    if model_type == "clip":
        towers = clip_towers(config, tensors, source, dtype)
    elif model_type == "siglip":
        towers = siglip_towers(config, tensors, source, dtype)
    else:
        hint = (
            " SigLIP 2 uses another patch embedding, which keras-hub lacks."
            if model_type == "siglip2"
            else ""
        )
        raise ValueError(
            f"{path!r} is not a CLIPModel or SiglipModel checkpoint "
            f"(config.json model_type={model_type!r}; expected 'clip' or "
            f"'siglip').{hint} Received: model_type={model_type!r}"
        )
    vision_encoder, text_encoder, heads = towers
    model = assemble_clip(vision_encoder, text_encoder, dtype=dtype, name=name, **heads)
    make_preprocessor = (
        clip_preprocessor if model_type == "clip" else siglip_preprocessor
    )
    preprocessor = make_preprocessor(location, config)
    return model, preprocessor
