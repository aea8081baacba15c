"""Generate notebooks/07_autoencoder.ipynb (run: python notebooks/_make_07_autoencoder.py)."""

import os

from _notebook_file import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = os.path.dirname(os.path.abspath(__file__))

cells = [
    new_markdown_cell(
        """# 07 · Multimodal autoencoder: reconstruct a missing modality

Seed tutorial §4.1.1:

$$\\min_{\\theta_e,\\theta_d} \\Vert f_{\\theta_d}(f_{\\theta_e}(x, y)) - [x, y] \\Vert^2 .$$

`keras_mm.models.MultimodalAutoencoder` encodes each modality, fuses the codes into one
shared code and decodes every modality from it; the loss is the sum over modalities of
the mean squared reconstruction error. During training one modality of an example is
hidden at random (`modality_dropout`), while its reconstruction still counts: the code
of the other modality must predict it (**cross-modal reconstruction**). At inference a
missing modality is reconstructed from the ones present.

Data: `keras_mm.data.load_digits_trimodal`, handwritten digit images and a synthetic
chirp per digit, given to the model as a log-magnitude spectrogram. Runs under any `KERAS_BACKEND`; claims are checked with `assert`."""
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
from keras_mm.models import MultimodalAutoencoder

keras.utils.set_random_seed(0)
print("backend:", keras.backend.backend())
data = load_digits_trimodal(image_size=16, audio_length=1024, audio_noise=0.1)


def spectrogram(waves, frame=128, step=64):
    # The audio modality as log-magnitude spectra: (batch, frames, frequencies).
    starts = range(0, waves.shape[1] - frame + 1, step)
    frames = np.stack([waves[:, s:s + frame] for s in starts], axis=1)
    magnitude = np.abs(np.fft.rfft(frames * np.hanning(frame), axis=-1))
    return np.log1p(magnitude).astype("float32")


# Whole batches (22 of 64 for fit; one of 256 for `reconstruct`): one shape each.
train, test = data["train"], data["test"]
x_train = {"images": train["inputs"]["images"][:1408],
           "audio": spectrogram(train["inputs"]["audio"][:1408])}
x_test = {"images": test["inputs"]["images"][:256],
          "audio": spectrogram(test["inputs"]["audio"][:256])}
y_train, y_test = train["labels"][:1408], test["labels"][:256]
print({k: v.shape for k, v in x_train.items()})"""
    ),
    new_code_cell(
        """def image_encoder():
    images = keras.Input((16, 16, 3), name="images")
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(images)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    return keras.Model(images, keras.layers.Flatten()(x), name="image_encoder")


def audio_encoder():
    audio = keras.Input(x_train["audio"].shape[1:], name="audio")
    x = keras.layers.Flatten()(audio)
    return keras.Model(audio, keras.layers.Dense(64, activation="relu")(x),
                       name="audio_encoder")


model = MultimodalAutoencoder(
    {"images": image_encoder(), "audio": audio_encoder()},
    code_dim=32, fusion="concat", modality_dropout=0.5, decoder_hidden_dim=128, seed=0,
)
model.compile(optimizer=keras.optimizers.Adam(2e-3))
history = model.fit(x_train, batch_size=64, epochs=14, verbose=0)
for key in ("loss", "reconstruction_loss", "cross_modal_loss"):
    print(key, np.round(history.history[key][::4], 4))
assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]"""
    ),
    new_markdown_cell(
        """## Images from sound alone

`reconstruct` fills a missing modality with zeros and masks it out of the fusion. Each
test image is rebuilt from its **sound only**; it should look like the right digit. We
check by assigning each reconstruction to the nearest class-mean training image, and
compare its error with the best label-free guess, the mean image."""
    ),
    new_code_cell(
        """from_audio = model.reconstruct({"audio": x_test["audio"]})["images_reconstruction"]
mse = float(np.mean((from_audio - x_test["images"]) ** 2))
baseline = float(np.mean((x_train["images"].mean(0) - x_test["images"]) ** 2))
means = np.stack([x_train["images"][y_train == d].mean(0) for d in range(10)])
dist = ((from_audio[:, None] - means[None]) ** 2).reshape(len(from_audio), 10, -1).sum(-1)
digit_accuracy = float(np.mean(dist.argmin(-1) == y_test))
print(f"image-from-audio MSE {mse:.4f} vs mean-image baseline {baseline:.4f}; "
      f"nearest class mean = true digit: {digit_accuracy:.3f}")
assert mse < 0.8 * baseline and digit_accuracy > 0.6

fig, axes = plt.subplots(2, 8, figsize=(8, 2.2))
for i in range(8):
    axes[0, i].imshow(x_test["images"][i])
    axes[1, i].imshow(np.clip(from_audio[i], 0, 1))
    axes[0, i].axis("off"); axes[1, i].axis("off")
axes[0, 0].set_title("true", fontsize=8, loc="left")
axes[1, 0].set_title("from sound", fontsize=8, loc="left")
display(fig)
plt.close(fig)"""
    ),
    new_markdown_cell(
        """## Which input helps the images most

An image reconstructed from itself (alone or with its sound) is sharper than one
reconstructed from the sound only: the sound carries the digit, not the handwriting."""
    ),
    new_code_cell(
        """def image_error(outputs):
    return float(np.mean((outputs["images_reconstruction"] - x_test["images"]) ** 2))


both = image_error(model.predict(x_test, verbose=0))
image_only = image_error(model.reconstruct({"images": x_test["images"]}))
print(f"image MSE: both {both:.4f}, image only {image_only:.4f}, sound only {mse:.4f}")
assert both < mse and image_only < mse"""
    ),
]

write_notebook(cells, os.path.join(HERE, "07_autoencoder.ipynb"))
