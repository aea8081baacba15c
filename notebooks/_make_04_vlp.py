"""Generate notebooks/04_vlp.ipynb (run: python notebooks/_make_04_vlp.py)."""

import os

from _notebook_file import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = os.path.dirname(os.path.abspath(__file__))

cells = [
    new_markdown_cell(
        """# 04 · Vision-language pre-training with a fusion encoder (ALBEF-style)

Seed tutorial §3.1.1 and §5.1.1. The seed's `VLP` feeds image and text features to a
fusion layer and returns the fused features, but gives no objective.
`keras_mm.models.VLP` trains it without labels with the two objectives of ALBEF
(Li et al., 2021):

* **ITC**, image-text contrastive: CLIP's loss on pooled, projected unimodal embeddings;
* **ITM**, image-text matching: a 2-way head on the fused features of each matched pair
  and of two **hard negatives** per pair, sampled from the in-batch similarities (the
  most similar wrong caption is the likeliest pick), so the fusion encoder must look at
  details the contrastive embeddings confuse.

The fusion encoder is a stack of `keras_mm.layers.CrossModalAttention` blocks in which
caption tokens attend to image tokens. Data: `keras_mm.data.load_shapes` (captions of
coloured shapes). Runs under any `KERAS_BACKEND`; claims are checked with `assert`."""
    ),
    new_code_cell(
        """import os

# Tiny models: one intra-op thread is fastest for torch on a shared CPU.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display
from keras import ops

from keras_mm.data import load_shapes
from keras_mm.encoders import TextEncoder
from keras_mm.models import VLP

keras.utils.set_random_seed(0)
print("backend:", keras.backend.backend())
data = load_shapes(num_train=1216, num_test=256, num_compositional=0, held_out=[],
                   shapes=("circle", "square", "triangle"))
x_train, x_test = data["train"]["inputs"], data["test"]["inputs"]"""
    ),
    new_markdown_cell(
        """## Encoders that return token sequences

The fusion encoder needs tokens, not pooled vectors: a small CNN whose 4×4 feature map
becomes 16 image tokens, and `TextEncoder(output_mode="sequence")`."""
    ),
    new_code_cell(
        """def cnn_tokens(width=8):
    images = keras.Input((32, 32, 3), name="images")
    x = images
    for filters in (width, 2 * width, 2 * width):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    tokens = keras.layers.Reshape((16, 2 * width))(x)
    return keras.Model(images, tokens, name="cnn_tokens")


text_encoder = TextEncoder(
    vocabulary_size=len(data["vocabulary"]),
    max_sequence_length=data["sequence_length"],
    hidden_dim=32, num_layers=1, num_heads=4, intermediate_dim=64,
    output_mode="sequence",
)
model = VLP(cnn_tokens(), text_encoder, embed_dim=32, num_fusion_layers=1,
            num_heads=4, seed=0)
model.compile(optimizer=keras.optimizers.Adam(2e-3))
# y = class ids, used only as *group ids*: captions of one class are not negatives
# for each other (ALBEF passes image ids for COCO's 5 captions per image). Without
# them, with 12 classes in batches of 32, the likeliest "hard negative" is another
# caption of the same class, and ITM would learn label noise. `fit(x_train)` alone
# also trains (see tests/models/vlp_test.py).
history = model.fit(x_train, data["train"]["labels"], batch_size=32, epochs=8,
                    verbose=0)
for key in ("loss", "itc_loss", "itm_loss"):
    print(key, np.round(history.history[key], 3))
assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
assert history.history["itm_loss"][-1] < history.history["itm_loss"][0]"""
    ),
    new_markdown_cell(
        """## What the model returns

`fused_features` are the caption tokens after cross-attending to the image, as in the
seed's listing; `itm_logits` score "this caption matches this image"."""
    ),
    new_code_cell(
        """out = model.predict({k: v[:32] for k, v in x_test.items()}, verbose=0)
print({k: v.shape for k, v in out.items()})"""
    ),
    new_markdown_cell(
        """## Matching

For each held-out image we compare its own caption with the caption of another test
image of a different class, and with a **hard** one: a different shape of the same
colour. The ITM head should give the true caption the higher match probability; the
hard case is the one ITM exists for, and it improves with longer training."""
    ),
    new_code_cell(
        """labels = data["test"]["labels"]
num_shapes = len(data["class_names"]) // 4
rng = np.random.default_rng(0)


def partner_captions(condition):
    partner = np.array([rng.choice(np.flatnonzero(condition(c))) for c in labels])
    return dict(x_test, token_ids=x_test["token_ids"][partner],
                padding_mask=x_test["padding_mask"][partner])


other_class = partner_captions(lambda c: labels != c)
same_colour = partner_captions(
    lambda c: (labels // num_shapes == c // num_shapes) & (labels != c))
p_true = ops.convert_to_numpy(model.match_probability(x_test))
wins = {name: float(np.mean(p_true > ops.convert_to_numpy(model.match_probability(x))))
        for name, x in (("other class", other_class), ("same colour", same_colour))}
print("true caption preferred over:", wins)
assert wins["other class"] > 0.8"""
    ),
    new_markdown_cell(
        """## Contrastive retrieval

The unimodal embeddings alone retrieve captions: rank all test captions for each test
image and check that the top one describes the same class. The picture puts the two
heads side by side on one test image per class against those images' captions: the
contrastive similarity of the unimodal embeddings (ITC) and the fusion encoder's match
probability (ITM)."""
    ),
    new_code_cell(
        """out_all = model.predict(x_test, verbose=0)
sim = out_all["image_embeddings"] @ out_all["text_embeddings"].T
top1 = labels[sim.argmax(-1)] == labels
print(f"image->caption top-1 class match: {top1.mean():.3f}")
assert top1.mean() > 0.5

names = data["class_names"]
pick = np.array([np.flatnonzero(labels == c)[0] for c in range(len(names))])
k = len(pick)
every_pair = {  # image i with caption j, for all i, j
    "images": np.repeat(x_test["images"][pick], k, axis=0),
    "token_ids": np.tile(x_test["token_ids"][pick], (k, 1)),
    "padding_mask": np.tile(x_test["padding_mask"][pick], (k, 1)),
}
itm = ops.convert_to_numpy(model.match_probability(every_pair)).reshape(k, k)
captions = [data["test"]["captions"][i] for i in pick]
fig, axes = plt.subplots(1, 2, figsize=(10, 5))
for ax, matrix, title in ((axes[0], sim[np.ix_(pick, pick)], "ITC: cosine similarity"),
                          (axes[1], itm, "ITM: match probability")):
    image = ax.imshow(matrix, cmap="viridis")
    ax.set_title(title, fontsize=10)
    ax.set_xticks(range(k), captions, rotation=90, fontsize=7)
    ax.set_yticks(range(k), [f"image of a {n}" for n in names], fontsize=7)
    fig.colorbar(image, ax=ax, fraction=0.046)
fig.tight_layout()
display(fig)
plt.close(fig)"""
    ),
]

write_notebook(cells, os.path.join(HERE, "04_vlp.ipynb"))
