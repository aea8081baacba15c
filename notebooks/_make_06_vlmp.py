"""Generate notebooks/06_vlmp.ipynb (run: python notebooks/_make_06_vlmp.py)."""

import os

from _notebook_file import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = os.path.dirname(os.path.abspath(__file__))

cells = [
    new_markdown_cell(
        """# 06 · Vision + instruction → action (VLMP / VLMAP)

Seed tutorial §3.1.3 and §3.2.3. `keras_mm.models.VLMP` fuses an observation image and a
language instruction and predicts an action with a policy head: continuous
(`action_type="continuous"`, mean squared error) or discrete (`"discrete"`,
cross-entropy). As an auxiliary objective it aligns vision, language and action
contrastively (the seed's VLMAP): image-text always, and, when actions are given, the
fused state with an embedding of the true action.

The task needs both inputs: each image shows one coloured square on a 4×4 grid; the
instruction says where to move it ("move the square left", ...); the action is the
position the square should reach. The image alone does not say which way, the
instruction alone does not say from where. Runs under any `KERAS_BACKEND`; claims are
checked with `assert`."""
    ),
    new_code_cell(
        """import os

# Tiny models: one intra-op thread is fastest for torch on a shared CPU.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from keras_mm.encoders import ActionEncoder, TextEncoder
from keras_mm.models import VLMP

keras.utils.set_random_seed(0)
print("backend:", keras.backend.backend())

MOVES = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
VOCAB = ["[PAD]", "[UNK]", "move", "the", "square", *MOVES]
COLOURS = np.array([[1.0, 0.1, 0.1], [0.1, 0.9, 0.1], [0.2, 0.3, 1.0]], "float32")


def centre(row, col):  # grid cell -> position in [-1, 1]^2 as (x, y)
    return [(col + 0.5) / 2 - 1, (row + 0.5) / 2 - 1]


def make_task(n, seed):
    rng = np.random.default_rng(seed)
    images = np.full((n, 16, 16, 3), 0.1, "float32")
    token_ids = np.zeros((n, 4), "int32")
    actions = np.zeros((n, 2), "float32")
    starts = np.zeros((n, 2), "float32")
    names = list(MOVES)
    for i in range(n):
        move = names[rng.integers(4)]
        dr, dc = MOVES[move]
        # Start anywhere the move stays on the grid.
        row = rng.integers(max(0, -dr), 4 - max(0, dr))
        col = rng.integers(max(0, -dc), 4 - max(0, dc))
        images[i, 4 * row:4 * row + 4, 4 * col:4 * col + 4] = COLOURS[rng.integers(3)]
        token_ids[i] = [VOCAB.index(w) for w in ("move", "the", "square", move)]
        actions[i] = centre(row + dr, col + dc)
        starts[i] = centre(row, col)
    images += 0.03 * rng.standard_normal(images.shape).astype("float32")
    x = {"images": images, "token_ids": token_ids, "padding_mask": token_ids > 0}
    return x, actions, starts


x_train, a_train, _ = make_task(1152, seed=0)  # whole batches of 64
x_test, a_test, s_test = make_task(256, seed=1)  # one predict batch"""
    ),
    new_markdown_cell(
        """## Model

The image encoder is a small CNN whose flattened feature map keeps *where* things are;
the instruction goes through `keras_mm.encoders.TextEncoder`; the true actions go
through `keras_mm.encoders.ActionEncoder` for the auxiliary alignment."""
    ),
    new_code_cell(
        """def grid_cnn():
    images = keras.Input((16, 16, 3), name="images")
    x = keras.layers.Conv2D(16, 4, strides=4, activation="relu")(images)  # 4x4 cells
    x = keras.layers.Flatten()(x)
    return keras.Model(images, keras.layers.Dense(64, activation="relu")(x),
                       name="grid_cnn")


def build(**kwargs):
    text = TextEncoder(vocabulary_size=len(VOCAB), max_sequence_length=4,
                       hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32)
    return VLMP(grid_cnn(), text, embed_dim=32, hidden_dim=128, fusion="concat",
                **kwargs)


model = build(action_dim=2, action_encoder=ActionEncoder(action_dim=2, hidden_dim=16,
                                                         num_layers=1))
model.compile(optimizer=keras.optimizers.Adam(3e-3))
history = model.fit(x_train, a_train, batch_size=64, epochs=4, verbose=0)
for key in ("loss", "action_loss", "itc_loss", "vla_loss"):
    print(key, np.round(history.history[key], 3))
assert history.history["action_loss"][-1] < 0.5 * history.history["action_loss"][0]"""
    ),
    new_markdown_cell(
        """## The policy uses both inputs

Baselines: without the instruction the best guess is the square's own position; without
the image it is the mean position shifted by the move. The model must beat both. In the
picture each arrow goes from the square to the position the policy predicts; the yellow
ring is where the instruction says it should go."""
    ),
    new_code_cell(
        """pred = model.predict_actions(x_test)
mse = float(np.mean((pred - a_test) ** 2))
vision_only = float(np.mean((s_test - a_test) ** 2))  # guess: stay where it is
# Guess from the words alone: the average start, moved as told.
text_only = float(np.mean((s_test.mean(0) - s_test) ** 2))
print(f"test MSE {mse:.4f}; best vision-only guess {vision_only:.4f}; "
      f"best instruction-only guess {text_only:.4f}")
assert mse < 0.5 * min(vision_only, text_only)


def to_pixels(position):  # [-1, 1]^2 -> imshow coordinates of the 16 x 16 image
    return (np.asarray(position) + 1) * 8 - 0.5


fig, axes = plt.subplots(1, 8, figsize=(12, 2))
for i, ax in enumerate(axes):
    ax.imshow(np.clip(x_test["images"][i], 0, 1))
    ax.annotate("", xy=to_pixels(pred[i]), xytext=to_pixels(s_test[i]),
                arrowprops={"arrowstyle": "->", "color": "white", "lw": 1.5})
    ax.plot(*to_pixels(a_test[i]), "o", mfc="none", mec="yellow", ms=12, mew=1.5)
    ax.set_title("move the square " + VOCAB[x_test["token_ids"][i, 3]], fontsize=8)
    ax.axis("off")
fig.tight_layout()
display(fig)
plt.close(fig)"""
    ),
    new_markdown_cell(
        """## Label-free pre-training and discrete actions

Without actions, `fit(x)` trains only the vision-language alignment (useful before
action labels exist). `action_type="discrete"` turns the head into a classifier over
`num_actions`; here: which quadrant the square must reach."""
    ),
    new_code_cell(
        """import warnings

pretrain = build(action_dim=2)
pretrain.compile(optimizer=keras.optimizers.Adam(3e-3))
with warnings.catch_warnings():  # the policy head gets no gradient without actions
    warnings.filterwarnings("ignore", message="Gradients do not exist")
    logs = pretrain.fit(x_train, batch_size=64, epochs=2, verbose=0).history
print("label-free itc_loss:", np.round(logs["itc_loss"], 3))

quadrant = (a_train[:, 0] > 0).astype("int32") + 2 * (a_train[:, 1] > 0)
quadrant_test = (a_test[:, 0] > 0).astype("int32") + 2 * (a_test[:, 1] > 0)
discrete = build(action_dim=4, action_type="discrete")
discrete.compile(optimizer=keras.optimizers.Adam(3e-3))
discrete.fit(x_train, quadrant, batch_size=64, epochs=4, verbose=0)
accuracy = float(np.mean(discrete.predict_actions(x_test) == quadrant_test))
print(f"discrete quadrant accuracy: {accuracy:.3f} (chance 0.25)")
assert accuracy > 0.6"""
    ),
]

write_notebook(cells, os.path.join(HERE, "06_vlmp.ipynb"))
