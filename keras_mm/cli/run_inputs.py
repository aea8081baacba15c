"""How a run turns texts and image files into model inputs.

A from-scratch run tokenizes with its own word vocabulary (`RUN/vocabulary.json`)
and feeds images scaled to [0, 1]. A run started with `--init` keeps the
checkpoint's tokenizer as a keras-hub preset directory (`RUN/preprocessor/`) and
its image mean and standard deviation in `run.json` (`"inputs"`). Either way
images are read as the training stream reads them (shortest side resized, bicubic
and antialiased above a 1.1x shrink, centre crop, `(x / 255 - mean) / std`), so
`evaluate`, `export` (raw-input endpoints) and the commands that classify or
search image files all see what training saw. Use `run_inputs(run, config)` after
`load_run`.
"""

import os

import numpy as np

from keras_mm.cli.checkpoints import VOCABULARY
from keras_mm.export.text_inputs import TextInputs, load_text_preprocessor

PREPROCESSOR_DIR = "preprocessor"
WORDS, PRESET = "words", "preset"


class RunInputs:
    """A run's tokenizer and image preprocessing.

    Args:
        text: `TextInputs`.
        image_size: int. Square side of the model's images.
        mean, std: per-channel normalisation of images in [0, 1].
        vocabulary: list of str (word-vocabulary runs) or None.
    """

    def __init__(
        self, text, image_size, mean=(0, 0, 0), std=(1, 1, 1), vocabulary=None
    ):
        self.text = text
        self.image_size = int(image_size)
        self.mean = [float(v) for v in np.broadcast_to(mean, (3,))]
        self.std = [float(v) for v in np.broadcast_to(std, (3,))]
        self.vocabulary = vocabulary

    @property
    def sequence_length(self):
        return self.text.sequence_length

    @property
    def kind(self):
        return WORDS if self.vocabulary is not None else PRESET

    def tokenize(self, texts):
        """`{"token_ids": int32, "padding_mask": bool}` NumPy arrays of `texts`."""
        from keras import ops

        out = self.text(list(texts))
        return {
            "token_ids": np.asarray(ops.convert_to_numpy(out["token_ids"]), "int32"),
            "padding_mask": np.asarray(ops.convert_to_numpy(out["padding_mask"]), bool),
        }

    def normalize(self, images):
        """Images in [0, 1], `(..., H, W, 3)`, to the model's input range."""
        images = np.asarray(images, "float32")
        mean, std = np.float32(self.mean), np.float32(self.std)
        return ((images - mean) / std).astype("float32")

    def load_images(self, sources):
        """Model-ready `(N, S, S, 3)` float32 images of files or encoded bytes."""
        from keras_mm.export.raw_inputs import preprocess_image_bytes

        images = []
        for source in sources:
            if isinstance(source, (str, os.PathLike)):
                with open(source, "rb") as f:
                    source = f.read()
            images.append(
                preprocess_image_bytes(source, self.image_size, self.mean, self.std)
            )
        size = self.image_size
        return np.stack(images) if images else np.zeros((0, size, size, 3), "f4")

    def describe(self):
        """The `run.json` entry `"inputs"`."""
        return {
            "tokenizer": self.kind,
            "image_size": self.image_size,
            "sequence_length": self.sequence_length,
            "mean": self.mean,
            "std": self.std,
        }

    def save(self, run):
        """Write the tokenizer files into the run directory."""
        if self.vocabulary is not None:
            run.write_json(VOCABULARY, self.vocabulary)
        else:
            self.text.layer.save_to_preset(run.file(PREPROCESSOR_DIR))


def word_inputs(vocabulary, image_size, sequence_length):
    """The inputs of a from-scratch run: word tokens and images in [0, 1]."""
    from keras_mm.data import make_tokenizer

    tokenizer = make_tokenizer(list(vocabulary), sequence_length)
    return RunInputs(TextInputs(tokenizer), image_size, vocabulary=list(vocabulary))


def run_inputs(run, config):
    """The `RunInputs` of a run directory (`RunDir`) and its configuration."""
    spec = config.get("inputs")
    if spec is None or spec.get("tokenizer") == WORDS:
        dataset = config["dataset"]
        size = (spec or dataset)["image_size"]
        length = (spec or dataset)["sequence_length"]
        vocabulary = run.read_json(VOCABULARY)
        inputs = word_inputs(vocabulary, size, length)
        if spec is not None:
            inputs.mean, inputs.std = list(spec["mean"]), list(spec["std"])
        return inputs
    layer = load_text_preprocessor(run.file(PREPROCESSOR_DIR))
    return RunInputs(TextInputs(layer), spec["image_size"], spec["mean"], spec["std"])


def adapt_dataset(data, inputs):
    """An in-memory CLI dataset (`load_dataset`) in the `--init` model's inputs.

    Captions and class prompts are tokenized again with the model's tokenizer and
    images (in [0, 1], at the model's size) normalised with its mean and std.
    """
    out = dict(data)
    for name in ("train", "test", "compositional"):
        if name not in data:
            continue
        split = dict(data[name])
        split.update(inputs.tokenize(split["captions"]))
        split["images"] = inputs.normalize(split["images"])
        out[name] = split
    texts = data.get("class_prompt_texts")
    if texts is not None:
        flat = inputs.tokenize([t for row in texts for t in row])
        shape = (len(texts), len(texts[0]), -1)
        out["class_prompts"] = {k: v.reshape(shape) for k, v in flat.items()}
    return out
