"""Generate notebooks/03_clip.ipynb (run: python notebooks/_make_03_clip.py)."""

import os

from _notebook_file import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = os.path.dirname(os.path.abspath(__file__))

cells = [
    new_markdown_cell(
        """# 03 · CLIP from scratch: captions in, zero-shot classifier out

Seed tutorial §3.2.1 and §5.2.1. `keras_mm.models.CLIP` pairs an image encoder and a
text encoder, projects both to one space with L2-normalised heads and trains them with
the symmetric InfoNCE loss and a learnable temperature, inside `compute_loss`: so
`model.compile(optimizer=...)` + `model.fit(x)` trains it **without labels**, under any
`KERAS_BACKEND`.

The data are `keras_mm.data.load_shapes`: 32×32 images of one coloured shape (4 colours ×
6 shapes = 24 classes) with captions from several templates ("a small red circle", "there
is a red circle in the picture", ...). After training we classify **held-out** images
zero-shot, from class prompts alone ("a photo of a red circle", "a red circle", ...),
averaging the text embeddings of 4 templates per class. Every claim is checked with
`assert`."""
    ),
    new_code_cell(
        """import os

# Tiny models: one intra-op thread is fastest for torch on a shared CPU.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import time

import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display
from keras import ops

from keras_mm.data import load_shapes
from keras_mm.encoders import TextEncoder
from keras_mm.losses import clip_loss
from keras_mm.models import CLIP

keras.utils.set_random_seed(0)
print("backend:", keras.backend.backend())
data = load_shapes(num_train=2000, num_test=480, num_compositional=240)
print(len(data["class_names"]), "classes;", data["train"]["captions"][:3])"""
    ),
    new_markdown_cell(
        """## The seed's objective is not a loss

The seed's listing returns `mean(x @ y.T)`, the mean cosine similarity of **all** pairs.
Maximising it is solved by mapping every image and every caption to the same vector: a
collapse that carries no information. The contrastive loss ranks the matching caption
above the others, so the same collapse is its *worst* case (`log B`)."""
    ),
    new_code_cell(
        """rng = np.random.default_rng(0)
collapsed = np.tile(rng.normal(size=(1, 8)), (16, 1))
collapsed /= np.linalg.norm(collapsed, axis=1, keepdims=True)
seed_objective = float(np.mean(collapsed @ collapsed.T))
loss = float(clip_loss(ops.convert_to_tensor(10.0 * collapsed @ collapsed.T)))
print(f"seed objective {seed_objective:.3f} (its maximum), CLIP loss {loss:.3f}")
assert abs(seed_objective - 1.0) < 1e-6 and abs(loss - np.log(16)) < 1e-4"""
    ),
    new_markdown_cell(
        """## Model

Any Keras model can be an encoder. For the images we use a three-layer CNN, which
learns shapes in a few epochs (a tiny ViT, `keras_mm.encoders.ImageEncoder`, learns the
colours at once but the shapes only slowly); the captions go through
`keras_mm.encoders.TextEncoder`, a small transformer with a padding mask."""
    ),
    new_code_cell(
        """def small_cnn(width=8):
    images = keras.Input((32, 32, 3), name="images")
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(images)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(4 * width, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    return keras.Model(images, x, name="small_cnn")


text_encoder = TextEncoder(
    vocabulary_size=len(data["vocabulary"]),
    max_sequence_length=data["sequence_length"],
    hidden_dim=32,
    num_layers=1,
    num_heads=4,
    intermediate_dim=64,
)
model = CLIP(small_cnn(), text_encoder, embed_dim=32, loss="clip")
model.compile(optimizer=keras.optimizers.Adam(2e-3))
start = time.time()
history = model.fit(data["train"]["inputs"], batch_size=64, epochs=5, verbose=0)
print("loss per epoch:", np.round(history.history["loss"], 3))
print(f"trained in {time.time() - start:.1f} s")
assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]"""
    ),
    new_markdown_cell(
        """## Zero-shot classification of held-out images

`build_zero_shot_weights` embeds every (class, template) prompt, averages the templates
of each class and re-normalises; `zero_shot_predict` scores images against the class
embeddings with the learned temperature. The picture shows, for the images of each true
class (rows), the mean probability given to each class prompt (columns): a sharp
diagonal is a zero-shot classifier. The rows marked `*` are the combinations never seen
in training (next section)."""
    ),
    new_code_cell(
        """print(data["class_prompts"]["prompts"][0])
weights = model.build_zero_shot_weights(data["class_prompts"])
# Held-out and unseen-combination images in one call: one classifier, one batch shape.
all_images = np.concatenate(
    [data["test"]["inputs"]["images"], data["compositional"]["inputs"]["images"]])
all_labels = np.concatenate([data["test"]["labels"], data["compositional"]["labels"]])
all_probs = model.zero_shot_predict(all_images, weights, batch_size=240)
probs = all_probs[: len(data["test"]["labels"])]
accuracy = float(np.mean(probs.argmax(-1) == data["test"]["labels"]))
print(f"zero-shot accuracy on {len(probs)} held-out images: {accuracy:.3f}")
assert accuracy >= 0.9

names = data["class_names"]
mean_probs = np.stack([all_probs[all_labels == c].mean(0) for c in range(len(names))])
unseen = set(data["held_out_classes"].tolist())
fig, ax = plt.subplots(figsize=(6.4, 5.6))
ax.imshow(mean_probs, cmap="viridis", vmin=0, vmax=1)
ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
ax.set_yticks(range(len(names)),
              [n + (" *" if c in unseen else "") for c, n in enumerate(names)],
              fontsize=7)
ax.set_xlabel("class prompt")
ax.set_ylabel("true class of the images")
ax.set_title("mean zero-shot probability")
fig.tight_layout()
display(fig)
plt.close(fig)"""
    ),
    new_markdown_cell(
        """## Unseen combinations

`load_shapes` holds out one shape per colour from training (e.g. "red square" never
appears). Those images are classified among all 24 classes: the model has seen the
colour word and the shape word, never their combination."""
    ),
    new_code_cell(
        """comp = data["compositional"]
probs = all_probs[len(data["test"]["labels"]) :]  # the unseen-combination images
comp_accuracy = float(np.mean(probs.argmax(-1) == comp["labels"]))
print("held-out combinations:", [data["class_names"][c] for c in data["held_out_classes"]])
print(f"zero-shot accuracy on unseen combinations: {comp_accuracy:.3f} "
      f"(chance {1 / len(data['class_names']):.3f})")
assert comp_accuracy > 1 / len(data["class_names"])

# Two images of each unseen combination, titled with the zero-shot answer.
shown = np.concatenate([np.flatnonzero(comp["labels"] == c)[:2]
                        for c in data["held_out_classes"]])
fig, axes = plt.subplots(1, len(shown), figsize=(1.3 * len(shown), 1.8))
for ax, i in zip(axes, shown):
    predicted = probs[i].argmax()
    ax.imshow(comp["inputs"]["images"][i])
    ax.set_title(names[predicted].replace(" ", "\\n"), fontsize=8,
                 color="green" if predicted == comp["labels"][i] else "red")
    ax.axis("off")
fig.suptitle("unseen combinations: zero-shot answer (green: right, red: wrong)",
             fontsize=9)
fig.tight_layout()
display(fig)
plt.close(fig)"""
    ),
    new_markdown_cell(
        """## Save and reload

The model, both encoders and the learned temperature round-trip through one `.keras`
file, which loads under any backend."""
    ),
    new_code_cell(
        """import tempfile

path = os.path.join(tempfile.mkdtemp(), "clip.keras")
model.save(path)
restored = keras.saving.load_model(path)
x = {k: v[:8] for k, v in data["test"]["inputs"].items()}
a, b = model.predict(x, verbose=0), restored.predict(x, verbose=0)
assert all(np.allclose(a[k], b[k], atol=1e-6) for k in a)
print("restored logit scale:", float(ops.convert_to_numpy(restored.logits_head.scale)))"""
    ),
    new_markdown_cell(
        """Other knobs: `loss="siglip"` (pairwise sigmoid loss with a learnable bias), keras-hub
backbones as encoders (`keras_hub.models.ViTBackbone`, `BertBackbone`; a `segment_ids`
input is filled with zeros), `compile` under `mixed_bfloat16` (the loss stays float32).
See `docs/concepts.md`, section *Model families*."""
    ),
]

write_notebook(cells, os.path.join(HERE, "03_clip.ipynb"))
