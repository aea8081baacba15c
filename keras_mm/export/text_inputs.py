"""Strings to `{"token_ids", "padding_mask"}` with a keras-hub tokenizer.

Shared by the CLI (training streams, evaluation) and the raw-input SavedModel
endpoints. No TensorFlow import here; keras-hub is imported on first use.
"""

import json
import os


def load_text_preprocessor(directory):
    """A keras-hub preprocessor (or tokenizer) saved with `save_to_preset`."""
    from keras_hub.src.utils.preset_utils import (
        KerasPresetLoader,
        check_config_class,
    )

    loader = KerasPresetLoader(directory, {})
    for name, load in (
        ("preprocessor.json", loader.load_preprocessor),
        ("tokenizer.json", loader.load_tokenizer),
    ):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                cls = check_config_class(json.load(f))
            return load(cls)
    raise ValueError(
        f"{directory!r} holds no keras-hub preprocessor.json or tokenizer.json"
    )


class TextInputs:
    """Strings -> `{"token_ids", "padding_mask"}` with a keras-hub layer.

    Works eagerly and inside `tf.data` / `tf.function` graphs. `layer` is a
    keras-hub text preprocessor (`CLIPPreprocessor`, `SigLIPPreprocessor`: start
    and end tokens, padding) or a tokenizer with a `sequence_length` (the CLI's
    word tokenizer, which pads with id 0).
    """

    def __init__(self, layer):
        self.layer = layer
        self.sequence_length = int(layer.sequence_length)

    def __call__(self, texts):
        import keras_hub

        if isinstance(self.layer, keras_hub.models.Preprocessor):
            out = self.layer({"prompts": texts, "images": None})
            return {"token_ids": out["token_ids"], "padding_mask": out["padding_mask"]}
        token_ids = self.layer(texts)
        return {"token_ids": token_ids, "padding_mask": token_ids != 0}
