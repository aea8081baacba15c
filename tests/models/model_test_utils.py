"""Tiny encoders and a learnable synthetic multimodal task for the model tests.

Every example belongs to one of `NUM_CLASSES` classes; each modality shows the
class (an image prototype, a class word, a class tone), plus noise. With 16
classes and batches of 16, in-batch duplicates are rare enough that a contrastive
loss can fall well below half its initial value.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np

from keras_mm.encoders import AudioEncoder, ImageEncoder, TextEncoder

NUM_CLASSES = 16
IMAGE_SHAPE = (16, 16, 3)
LENGTH = 6
VOCAB = NUM_CLASSES + 8
AUDIO_SAMPLES = 256
SAMPLE_RATE = 8000
BACKENDS = ("jax", "tensorflow", "torch")
# The backend that loads what the current backend saved: every backend saves
# once and loads once over the three CI runs.
LOADER = {"tensorflow": "torch", "jax": "tensorflow", "torch": "jax"}


def image_encoder(output_mode="pooled", name=None):
    return ImageEncoder(
        image_shape=IMAGE_SHAPE,
        patch_size=8,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        intermediate_dim=32,
        pooling="mean",
        output_mode=output_mode,
        name=name,
    )


def text_encoder(output_mode="pooled", name=None):
    return TextEncoder(
        vocabulary_size=VOCAB,
        max_sequence_length=LENGTH,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        intermediate_dim=32,
        output_mode=output_mode,
        name=name,
    )


def audio_encoder(name=None):
    return AudioEncoder(
        sampling_rate=SAMPLE_RATE,
        num_samples=AUDIO_SAMPLES,
        num_mel_bins=16,
        fft_length=64,
        sequence_stride=32,
        hidden_dim=16,
        num_conv_layers=1,
        num_layers=0,
        num_heads=2,
        intermediate_dim=32,
        name=name,
    )


def synthetic_task(n=128, seed=0, num_classes=NUM_CLASSES):
    """Inputs `{"images", "token_ids", "padding_mask", "audio"}` and labels.

    Class `c`: an image of 2x2 coloured blocks (a fixed colour pattern per
    class) plus noise; a caption holding the class word twice among filler
    words, padded to random lengths; a tone at `250 + 200 c` Hz plus noise.
    """
    proto_rng = np.random.default_rng(1234)  # the same classes for every split
    codes = proto_rng.permutation(2**12)[:num_classes]
    bits = (codes[:, None] >> np.arange(12)) & 1
    blocks = np.where(bits, 0.9, 0.1).reshape(num_classes, 2, 2, 3)
    prototypes = blocks.repeat(IMAGE_SHAPE[0] // 2, 1).repeat(IMAGE_SHAPE[1] // 2, 2)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=n)
    images = prototypes[labels] + 0.1 * rng.standard_normal((n,) + IMAGE_SHAPE)
    length = rng.integers(3, LENGTH + 1, size=n)
    token_ids = np.zeros((n, LENGTH), "int32")
    token_ids[:, 0] = 2 + labels
    token_ids[:, 1] = rng.integers(num_classes + 2, VOCAB, size=n)
    token_ids[:, 2] = 2 + labels
    for i, k in enumerate(length):
        token_ids[i, 3:k] = 1
    t = np.arange(AUDIO_SAMPLES) / SAMPLE_RATE
    freq = 250.0 + 200.0 * labels
    audio = np.sin(2 * np.pi * freq[:, None] * t[None, :])
    audio = audio + 0.1 * rng.standard_normal(audio.shape)
    x = {
        "images": images.astype("float32"),
        "token_ids": token_ids,
        "padding_mask": token_ids > 0,
        "audio": audio.astype("float32"),
    }
    return x, labels.astype("int32")


def subset(x, keys):
    return {k: x[k] for k in keys}


def first_and_last_loss(history, key="loss"):
    values = history.history[key]
    return values[0], values[-1]


def to_numpy(tree):
    return keras.tree.map_structure(keras.ops.convert_to_numpy, tree)


def run_in_backend(backend, tasks, workdir, timeout=300):
    """Run `cross_backend_worker.py` on `tasks` under `backend`; return results."""
    manifest = os.path.join(workdir, "tasks.json")
    with open(manifest, "w") as f:
        json.dump(tasks, f)
    worker = os.path.join(os.path.dirname(__file__), "cross_backend_worker.py")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, worker, manifest],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"worker under {backend} failed:\n{proc.stdout[-3000:]}\n"
            f"{proc.stderr[-3000:]}"
        )
    with open(os.path.join(workdir, "results.json")) as f:
        return json.load(f)


# Light stand-in encoders (any functional Keras model is an encoder): faster
# than the transformer encoders where a test needs many epochs.
def light_image_encoder(sequence=False, width=16, name=None):
    images = keras.Input(IMAGE_SHAPE, name="images")
    x = keras.layers.Conv2D(width, 8, strides=8, name="patches")(images)
    x = keras.layers.Reshape((4, width), name="tokens")(x)
    x = keras.layers.Dense(width, activation="gelu", name="mix")(x)
    if not sequence:  # keep where each block is: flatten, do not average
        x = keras.layers.Dense(width, name="pool")(keras.layers.Flatten()(x))
    return keras.Model(images, x, name=name or "light_image_encoder")


def light_text_encoder(width=16, name=None):
    """Token features `(batch, LENGTH, width)`; the model pools with the mask."""
    token_ids = keras.Input((LENGTH,), dtype="int32", name="token_ids")
    padding_mask = keras.Input((LENGTH,), dtype="bool", name="padding_mask")
    x = keras.layers.Embedding(VOCAB, width, name="embedding")(token_ids)
    x = keras.layers.Dense(width, activation="gelu", name="mix")(x)
    return keras.Model(
        {"token_ids": token_ids, "padding_mask": padding_mask},
        x,
        name=name or "light_text_encoder",
    )


def light_audio_encoder(width=16, name=None):
    audio = keras.Input((AUDIO_SAMPLES,), name="audio")
    x = keras.layers.Dense(2 * width, activation="gelu", name="hidden")(audio)
    x = keras.layers.Dense(width, name="features")(x)
    return keras.Model(audio, x, name=name or "light_audio_encoder")
