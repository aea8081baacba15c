"""Generate notebooks/01_fusion.ipynb (run: python notebooks/_make_01_fusion.py)."""

import os

from _notebook_file import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = os.path.dirname(os.path.abspath(__file__))

cells = [
    new_markdown_cell(
        """# 01 · Fusion layers on a task that needs both modalities

Seed sections 4.3 and 5.3. Each sample has two modalities, "vision" and "text". The label
`y = 2a + b` has 4 classes built from two independent bits: `a` lives only in the vision
features and `b` only in the text features. A classifier that sees one modality can reach at
most 50% accuracy; a classifier that fuses both can reach ~100%.

The notebook runs on any backend: set `KERAS_BACKEND` to `jax`, `tensorflow` or `torch`
before starting the kernel."""
    ),
    new_code_cell(
        """import os
os.environ.setdefault("KERAS_BACKEND", "jax")
import keras
import numpy as np
import matplotlib.pyplot as plt
from IPython.display import display

from keras_mm.data import make_split_label_dataset
from keras_mm.layers import AttentionFusion, ConcatFusion, GatedFusion

print("backend:", keras.backend.backend())
(x_train, y_train) = make_split_label_dataset(1000, seed=0)
(x_test, y_test) = make_split_label_dataset(1024, seed=1)  # 32 whole predict batches
{k: v.shape for k, v in x_train.items()}"""
    ),
    new_markdown_cell(
        """## One model builder, five variants

Each modality is projected to a common width; then either one modality alone is used, or the
two are fused with `ConcatFusion` (seed 5.3.1), `AttentionFusion` (seed 4.3.1,
`h = Σ αᵢ zᵢ`) or `GatedFusion` (seed 4.3.2, `h = Σ zᵢ ⊙ σ(Wᵢ zᵢ + bᵢ)`)."""
    ),
    new_code_cell(
        """WIDTH = 32

def build(fusion):
    vision = keras.Input((x_train["vision"].shape[1],), name="vision")
    text = keras.Input((x_train["text"].shape[1],), name="text")
    z_v = keras.layers.Dense(WIDTH, activation="relu")(vision)
    z_t = keras.layers.Dense(WIDTH, activation="relu")(text)
    outputs = {}
    if fusion == "vision":
        h = z_v
    elif fusion == "text":
        h = z_t
    elif fusion == "concat":
        h = ConcatFusion(WIDTH, WIDTH)([z_v, z_t])
    elif fusion == "attention":
        h, alpha = AttentionFusion(WIDTH, name="attention_fusion")(
            [z_v, z_t], return_attention_scores=True
        )
        outputs["alpha"] = alpha
    else:
        h = GatedFusion()([z_v, z_t])
    h = keras.layers.Dense(WIDTH, activation="relu")(h)
    outputs["logits"] = keras.layers.Dense(4, name="logits")(h)
    return keras.Model({"vision": vision, "text": text}, outputs)

accuracy = {}
models = {}
for fusion in ["vision", "text", "concat", "attention", "gated"]:
    keras.utils.set_random_seed(0)
    model = build(fusion)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
    )
    model.fit(x_train, {"logits": y_train}, batch_size=100, epochs=6, verbose=0)
    logits = model.predict(x_test, verbose=0)["logits"]
    accuracy[fusion] = float(np.mean(np.argmax(logits, -1) == y_test))
    models[fusion] = model
    print(f"{fusion:>10}: held-out accuracy {accuracy[fusion]:.3f}")"""
    ),
    new_markdown_cell(
        """## The fused classifiers beat each single-modality classifier"""
    ),
    new_code_cell(
        """best_single = max(accuracy["vision"], accuracy["text"])
for fusion in ["concat", "attention", "gated"]:
    assert accuracy[fusion] > best_single + 0.3, (fusion, accuracy)
print("best single modality:", best_single)"""
    ),
    new_markdown_cell(
        """## Where does attention fusion look?

`return_attention_scores=True` returns the weights `α` over the two modalities, which sum to
one. Plotted per class on held-out data."""
    ),
    new_code_cell(
        """alpha = models["attention"].predict(x_test, verbose=0)["alpha"]
assert np.allclose(alpha.sum(-1), 1.0, atol=1e-5)
fig, ax = plt.subplots(figsize=(5, 3))
for c in range(4):
    ax.hist(alpha[y_test == c, 0], bins=20, range=(0, 1), alpha=0.5, label=f"class {c}")
ax.set_xlabel("attention weight on vision (α₁)")
ax.set_ylabel("samples")
ax.legend()
fig.tight_layout()
display(fig)
plt.close(fig)
print("mean α over (vision, text):", alpha.mean(0))"""
    ),
]

write_notebook(cells, os.path.join(HERE, "01_fusion.ipynb"))
