"""`keras-mm train --init PATH`: fine-tune a pretrained checkpoint or an earlier run.

PATH is a Hugging Face `CLIPModel` / `SiglipModel` checkpoint directory, a
keras-hub CLIP / SigLIP preset directory, an earlier run directory or a `.keras`
file of one (`RUN/model.keras`, `RUN/checkpoints/epoch-0003.keras`). The model
comes with the checkpoint's own tokenizer and image normalisation
(`keras_mm.pretrained` converts the weights exactly); the run directory stores
them (`run_inputs.RunInputs.save`), so the run is evaluated, exported and resumed
offline. A hub name (`hf://openai/clip-vit-base-patch32`, `openai/clip-...`,
`clip_vit_base_patch16`) is downloaded when there is a network; offline it fails
in one line that says how to download it.
"""

import json
import os

import numpy as np

from keras_mm.cli.app import RunError
from keras_mm.cli.checkpoints import MODEL, RUN_CONFIG, RunDir
from keras_mm.cli.parser import UsageError
from keras_mm.cli.run_inputs import RunInputs, run_inputs
from keras_mm.export.text_inputs import TextInputs

HUGGINGFACE, KERAS_HUB, RUN = "huggingface", "keras_hub", "run"
# Image normalisation when a checkpoint has no image settings.
DEFAULT_NORMALIZATION = {
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    "siglip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


def _run_of_keras_file(path):
    """The run directory a `.keras` file belongs to, or None."""
    head = os.path.dirname(os.path.abspath(path))
    for directory in (head, os.path.dirname(head)):
        if os.path.isfile(os.path.join(directory, RUN_CONFIG)):
            return directory
    return None


def init_source(path):
    """`(kind, location, keras_file)` of `--init PATH` (keras_file: runs only)."""
    local = os.path.expanduser(path)
    if os.path.isfile(local):
        run = _run_of_keras_file(local) if local.endswith(".keras") else None
        if run is None:
            raise UsageError(
                f"--init {path!r} is a file but not the .keras file of a run "
                "directory (its tokenizer is in the run directory); pass a run "
                "directory, a Hugging Face checkpoint or a keras-hub preset directory"
            )
        return RUN, run, local
    if os.path.isdir(local):
        if os.path.isfile(os.path.join(local, RUN_CONFIG)):
            keras_file = os.path.join(local, MODEL)
            if not os.path.isfile(keras_file):
                state = RunDir(local).checkpoint_state()
                if state is None:
                    raise UsageError(
                        f"--init {path!r}: the run has no {MODEL} and no checkpoint yet"
                    )
                keras_file = os.path.join(local, state["file"])
            return RUN, local, keras_file
        config_path = os.path.join(local, "config.json")
        if not os.path.isfile(config_path):
            raise UsageError(
                f"--init {path!r} holds neither a run ({RUN_CONFIG}) nor a Hugging "
                "Face checkpoint or keras-hub preset (config.json)"
            )
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
        kind = HUGGINGFACE if "model_type" in config else KERAS_HUB
        return kind, local, None
    if path.startswith("hf://"):
        return HUGGINGFACE, path, None
    if "://" in path:
        return KERAS_HUB, path, None
    if path.count("/") == 1 and not path.startswith(("/", ".", "~")):
        return HUGGINGFACE, path, None  # a Hugging Face repository id
    if "/" in path or path.startswith((".", "~")):
        raise UsageError(f"--init {path!r} does not exist")
    return KERAS_HUB, path, None  # a keras-hub preset name


def _offline_message(path, kind, error):
    reason = str(error).split(", and it is not", 1)[0].split(": it is a hub name", 1)
    reason = reason[-1].strip(" ,(") or "there is no network"
    if kind == HUGGINGFACE:
        repo = path.split("://", 1)[-1]
        how = (
            f"`huggingface-cli download {repo} --local-dir DIR` (or "
            f"huggingface_hub.snapshot_download({repo!r}, local_dir=DIR))"
        )
    else:
        how = (
            f"keras_hub.models.CLIPBackbone.from_preset({path!r}).save_to_preset(DIR) "
            "and the same with its CLIPPreprocessor"
        )
    return (
        f"--init {path!r} is a hub name and cannot be downloaded here ({reason}); "
        f"download it once on a machine with a network with {how}, then pass "
        "--init DIR"
    )


def _normalization(converter, loss):
    """`(mean, std)` for images in [0, 1] of a keras-hub image converter."""
    if converter is None:
        return DEFAULT_NORMALIZATION[loss]
    scale = 1.0 if converter.scale is None else converter.scale
    offset = 0.0 if converter.offset is None else converter.offset
    scale = np.broadcast_to(np.asarray(scale, "float64"), (3,))
    offset = np.broadcast_to(np.asarray(offset, "float64"), (3,))
    # x * scale + offset for x in [0, 255] == (x / 255 - mean) / std.
    std = 1.0 / (255.0 * scale)
    return (-offset * std).tolist(), std.tolist()


def _checkpoint_inputs(model, preprocessor, path):
    if preprocessor is None:
        raise RunError(
            f"--init {path!r} has no tokenizer (a CLIP checkpoint needs vocab.json "
            "and merges.txt, a SigLIP checkpoint spiece.model, a keras-hub preset "
            "its tokenizer.json)"
        )
    mean, std = _normalization(getattr(preprocessor, "image_converter", None),
                               model.loss_name)  # fmt: skip
    # The run keeps the text side only: images go through the training stream's
    # resize, crop and normalisation with this mean and std.
    preprocessor.image_converter = None
    image_size = int(model.image_encoder.input.shape[1])
    return RunInputs(TextInputs(preprocessor), image_size, mean, std)


def load_init(path):
    """`(model, inputs, entry)`: the model, its `RunInputs`, the run.json entry."""
    import keras

    kind, location, keras_file = init_source(path)
    entry = {"path": path, "kind": kind}
    if kind == RUN:
        source = RunDir(location)
        inputs = run_inputs(source, source.config())
        model = keras.saving.load_model(keras_file, compile=False)
        entry["path"] = os.path.abspath(keras_file)
        return model, inputs, entry
    from keras_mm import pretrained

    convert = (
        pretrained.clip_from_huggingface
        if kind == HUGGINGFACE
        else pretrained.clip_from_keras_hub
    )
    try:
        model, preprocessor = convert(location)
    except ConnectionError as error:
        raise RunError(_offline_message(path, kind, error)) from None
    if os.path.isdir(os.path.expanduser(location)):
        entry["path"] = os.path.abspath(os.path.expanduser(location))
    return model, _checkpoint_inputs(model, preprocessor, path), entry
