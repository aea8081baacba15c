"""Generate notebooks/05_vlap.ipynb (run: python notebooks/_make_05_vlap.py)."""

import os

from _notebook_file import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = os.path.dirname(os.path.abspath(__file__))

cells = [
    new_markdown_cell(
        """# 05 · Vision, language and audio in one space (VLAP)

Seed tutorial §3.1.2, §3.2.2, §5.1.2 and §5.2.2. `keras_mm.models.VLAP` encodes an image,
a caption and a sound, projects each to one L2-normalised space and trains without
labels:

* pairwise contrastive alignment of the three pairs (image-text, image-audio,
  text-audio), each with its own learnable temperature;
* a fused tri-modal embedding (`fusion="attention"`, `"gated"` or `"concat"`, the layers
  of seed §4.3) aligned with each single modality, so it lives in the same space.

Data: `keras_mm.data.load_digits_trimodal`, scikit-learn's handwritten digits (offline)
with a caption ("the digit seven", ...) and a synthetic chirp whose pitch depends on the
digit. Runs under any `KERAS_BACKEND`; claims are checked with `assert`."""
    ),
    new_code_cell(
        """import os

# Tiny models: one intra-op thread is fastest for torch on a shared CPU.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from keras_mm.data import load_digits_trimodal
from keras_mm.encoders import AudioEncoder, TextEncoder
from keras_mm.models import VLAP

keras.utils.set_random_seed(0)
print("backend:", keras.backend.backend())
data = load_digits_trimodal(image_size=16, audio_length=2000)
# Whole batches (22 of 64 for fit, 11 of 32 for predict): one compiled shape each.
x_train = {k: v[:1408] for k, v in data["train"]["inputs"].items()}
x_test = {k: v[:352] for k, v in data["test"]["inputs"].items()}
y_test = data["test"]["labels"][:352]
print({k: v.shape for k, v in x_train.items()}, data["train"]["captions"][:2])"""
    ),
    new_code_cell(
        """def small_cnn(width=8):
    images = keras.Input((16, 16, 3), name="images")
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(images)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(images, keras.layers.Dense(32)(x), name="small_cnn")


def build(fusion):
    text = TextEncoder(vocabulary_size=len(data["vocabulary"]),
                       max_sequence_length=data["sequence_length"], hidden_dim=16,
                       num_layers=1, num_heads=2, intermediate_dim=32)
    audio = AudioEncoder(sampling_rate=data["sample_rate"], num_samples=2000,
                         num_mel_bins=32, fft_length=256, sequence_stride=128,
                         hidden_dim=32, num_conv_layers=1, num_layers=0, num_heads=2,
                         intermediate_dim=32)
    return VLAP(small_cnn(), text, audio, embed_dim=32, fusion=fusion)


model = build("attention")
model.compile(optimizer=keras.optimizers.Adam(3e-3))
history = model.fit(x_train, batch_size=64, epochs=6, verbose=0)
for key in ("loss", "align_loss", "fusion_loss"):
    print(key, np.round(history.history[key], 3))
assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]"""
    ),
    new_markdown_cell(
        """## Zero-shot classification from every modality

Class prompts ("the digit seven", ...) are embedded by the text tower and averaged over
templates; images, sounds and the fused embedding are then classified by their nearest
class prompt. None of them saw a label."""
    ),
    new_code_cell(
        """out = model.predict(x_test, verbose=0)
prompts = data["class_prompts"]
tokens = prompts["token_ids"].reshape(-1, prompts["token_ids"].shape[-1])
masks = prompts["padding_mask"].reshape(tokens.shape)
# `encode` runs the text tower alone: the inputs it needs, one output.
text_emb = model.encode({"token_ids": tokens, "padding_mask": masks}, "text_embeddings")
class_emb = text_emb.reshape(10, -1, 32).mean(1)
class_emb /= np.linalg.norm(class_emb, axis=-1, keepdims=True)
accuracy = {m: float(np.mean((out[f"{m}_embeddings"] @ class_emb.T).argmax(-1) == y_test))
            for m in ("image", "audio", "fused")}
print({m: round(a, 3) for m, a in accuracy.items()}, "(chance 0.1)")
assert accuracy["audio"] > 0.5 and accuracy["image"] > 0.5 and accuracy["fused"] > 0.5"""
    ),
    new_markdown_cell(
        """## Sound to image retrieval

For each test sound, the nearest test image in the shared space should show the same
digit, although no (sound, image) pair was ever labelled. The picture projects the
test embeddings of both modalities onto the same two principal axes: sounds and images
of one digit land together."""
    ),
    new_code_cell(
        """nearest = (out["audio_embeddings"] @ out["image_embeddings"].T).argmax(-1)
audio_to_image = float(np.mean(y_test[nearest] == y_test))
print(f"audio -> image top-1 digit match: {audio_to_image:.3f}")
assert audio_to_image > 0.5

both = np.concatenate([out["image_embeddings"], out["audio_embeddings"]])
centre = both.mean(0)
axes_2d = np.linalg.svd(both - centre, full_matrices=False)[2][:2].T  # top-2 axes
fig, ax = plt.subplots(figsize=(5.5, 4.5))
for name, marker in (("image", "o"), ("audio", "x")):
    xy = (out[f"{name}_embeddings"] - centre) @ axes_2d
    points = ax.scatter(xy[:, 0], xy[:, 1], c=y_test, cmap="tab10", vmin=-0.5,
                        vmax=9.5, marker=marker, s=14, label=name, alpha=0.7)
fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
ax.legend(title="embedding of")
ax.set_title("image and audio embeddings, first two principal axes", fontsize=10)
fig.tight_layout()
display(fig)
plt.close(fig)"""
    ),
    new_markdown_cell(
        """## Choosing the fusion

`fusion` is `"attention"` (softmax-weighted sum, seed §4.3.1), `"gated"` (sigmoid gates,
§4.3.2), `"concat"` (concatenation + MLP, §5.3.1) or any layer taking a list of
embeddings. All three build and run on the same encoders."""
    ),
    new_code_cell(
        """batch = {k: v[:4] for k, v in x_test.items()}
for fusion in ("gated", "concat"):
    other = build(fusion)
    print(fusion, type(other.fusion_layer).__name__,
          other.predict(batch, verbose=0)["fused_embeddings"].shape)"""
    ),
]

write_notebook(cells, os.path.join(HERE, "05_vlap.ipynb"))
