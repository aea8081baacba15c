"""Private helper: a keras-hub `CLIPPreprocessor` from a Hugging Face checkpoint.

A `CLIPModel` repository holds the BPE files of its tokenizer (`vocab.json`,
`merges.txt`) and the image settings (`preprocessor_config.json`: crop size, mean,
standard deviation). keras-hub's `CLIPTokenizer` implements the same byte-level BPE
with CLIP's lower-casing and `</w>` word ends, so it gives the same token ids; its
image converter resizes (centre crop to the aspect ratio, bicubic) and normalises
with the same mean and standard deviation, which is close to, not bit-identical
with, `CLIPImageProcessor`'s PIL resize.
"""

import json
import os

import numpy as np


def _crop_size(settings, default):
    for key in ("crop_size", "size"):
        value = settings.get(key)
        if isinstance(value, dict):
            value = value.get("height", value.get("shortest_edge"))
        if value:
            return int(value)
    return default


def _image_converter(cls, directory, vision):
    """A keras-hub image converter from `preprocessor_config.json`, or None."""
    settings_path = os.path.join(directory, "preprocessor_config.json")
    if not os.path.isfile(settings_path):
        return None
    with open(settings_path) as f:
        settings = json.load(f)
    mean = np.asarray(settings.get("image_mean", [0.0, 0.0, 0.0]), "float64")
    std = np.asarray(settings.get("image_std", [1.0, 1.0, 1.0]), "float64")
    rescale = float(settings.get("rescale_factor", 1 / 255))
    size = _crop_size(settings, int(vision.get("image_size", 224)))
    return cls(
        image_size=(size, size),
        scale=(rescale / std).tolist(),
        offset=(-mean / std).tolist(),
        interpolation="bicubic",
    )


def clip_preprocessor(directory, config):
    """A keras-hub `CLIPPreprocessor`, or None without `vocab.json`/`merges.txt`."""
    vocabulary = os.path.join(directory, "vocab.json")
    merges = os.path.join(directory, "merges.txt")
    if not (os.path.isfile(vocabulary) and os.path.isfile(merges)):
        return None
    import keras_hub

    text = config.get("text_config") or {}
    vision = config.get("vision_config") or {}
    tokenizer = keras_hub.models.CLIPTokenizer(
        vocabulary=vocabulary, merges=merges, pad_with_end_token=True
    )
    return keras_hub.models.CLIPPreprocessor(
        tokenizer,
        image_converter=_image_converter(
            keras_hub.layers.CLIPImageConverter, directory, vision
        ),
        sequence_length=int(text.get("max_position_embeddings", 77)),
    )


def siglip_preprocessor(directory, config):
    """A keras-hub `SigLIPPreprocessor`, or None without `spiece.model`.

    keras-hub's `SigLIPTokenizer` reads the same SentencePiece model as
    `transformers`' `SiglipTokenizer` (`</s>` ends and pads); its preprocessor
    pads to `max_position_embeddings`, as SigLIP is trained.
    """
    proto = os.path.join(directory, "spiece.model")
    if not os.path.isfile(proto):
        return None
    import keras_hub

    text = config.get("text_config") or {}
    vision = config.get("vision_config") or {}
    return keras_hub.models.SigLIPPreprocessor(
        keras_hub.models.SigLIPTokenizer(proto=proto),
        image_converter=_image_converter(
            keras_hub.layers.SigLIPImageConverter, directory, vision
        ),
        sequence_length=int(text.get("max_position_embeddings", 64)),
    )
