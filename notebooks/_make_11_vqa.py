"""Generate notebooks/11_vqa.ipynb (run: python notebooks/_make_11_vqa.py)."""

import os

from _notebook_file import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = os.path.dirname(os.path.abspath(__file__))

cells = [
    new_markdown_cell(
        """# 11 · Visual and video question answering

Seed tutorial §6.2. `keras_mm.models.VQAModel` answers a question about an image by
**classifying over an answer vocabulary**, as the VQA v2 baselines do: an image
encoder and a question encoder are fused (attention, gated, concat, or cross-attention
in which the question tokens attend to the image tokens) and an MLP scores every
answer. It trains with plain `compile(loss=...)` + `fit(x, y)` on every backend. Plug a
`keras_mm.encoders.VideoEncoder` (one shared frame encoder + temporal attention over the
frames) in as the image encoder and the same model answers questions about **videos**.

Both datasets are procedural and bundled (no download):

* `load_shape_questions`: scenes of 1-3 coloured shapes with "what colour is the
  circle?", "what shape is red?", "how many squares?";
* `load_moving_shapes_videos`: 4-frame clips of shapes moving left/right/up/down with
  "which way does the red square move?" and "what colour is the moving shape?".

A model is only useful if it beats the **answer prior**: the best you can do from the
question alone (e.g. always "1" for "how many ...?"). We compute that baseline on the
held-out split and assert a clear margin. Every claim is checked with `assert`."""
    ),
    new_code_cell(
        """import os

# Tiny models: one intra-op thread is fastest for torch on a shared CPU.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import collections
import time

import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

if keras.backend.backend() == "torch":
    import torch

    torch.set_num_threads(1)

from keras_mm.data import load_moving_shapes_videos, load_shape_questions
from keras_mm.encoders import TextEncoder, VideoEncoder
from keras_mm.metrics import vqa_accuracy
from keras_mm.models import VQAModel

keras.utils.set_random_seed(0)
print("backend:", keras.backend.backend())
start = time.time()"""
    ),
    new_markdown_cell("## Questions about shape scenes"),
    new_code_cell(
        """data = load_shape_questions(num_train=1536, num_test=512, image_size=24)
train, test = data["train"], data["test"]
print("answers:", data["answer_vocabulary"])
fig, axes = plt.subplots(1, 6, figsize=(11, 2.4))
for i, ax in enumerate(axes):
    ax.imshow(train["inputs"]["images"][i])
    ax.set_title(f"{train['questions'][i]}\\n-> {train['answer_texts'][i]}", fontsize=7)
    ax.axis("off")
display(fig)
plt.close(fig)


def answer_prior(split):
    \"\"\"Best accuracy from the question alone: the majority answer per question
    text or per question type, counted on `split` itself (an oracle prior).\"\"\"
    answers = np.asarray(split["answers"])
    best = 0.0
    for groups in (np.asarray(split["questions"]), np.asarray(split["question_types"])):
        correct = sum(
            collections.Counter(answers[groups == g].tolist()).most_common(1)[0][1]
            for g in np.unique(groups)
        )
        best = max(best, correct / len(answers))
    return best


prior = answer_prior(test)
print(f"best question-only (answer prior) accuracy on test: {prior:.3f}")"""
    ),
    new_markdown_cell(
        """`VQAModel` takes **any** functional encoders. Here the image encoder is a
two-layer CNN whose 6×6 feature map is the sequence of image tokens (it learns colours
and shapes in a few seconds on a CPU; `keras_mm.encoders.ImageEncoder(output_mode=
"both")`, a ViT, plugs in the same way but needs more steps). The question encoder is
keras_mm's `TextEncoder`. With `fusion="cross_attention"` the question tokens attend to
the image tokens through a `CrossModalAttention` block (seed §3.3.2), then are
mean-pooled over the non-padding tokens."""
    ),
    new_code_cell(
        """def cnn_image_encoder(size, width=16):
    images = keras.Input((size, size, 3), name="images")
    x = keras.layers.Conv2D(16, 4, strides=4, padding="same", activation="relu")(images)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    tokens = keras.layers.Reshape(((size // 4) ** 2, width))(x)
    pooled = keras.layers.GlobalAveragePooling1D()(tokens)
    return keras.Model(images, {"pooled_output": pooled, "sequence_output": tokens})


def question_encoder(data, width=16):
    return TextEncoder(
        vocabulary_size=len(data["vocabulary"]),
        max_sequence_length=data["sequence_length"],
        hidden_dim=width,
        num_layers=1,
        num_heads=2,
        intermediate_dim=2 * width,
        output_mode="both",
    )


vqa = VQAModel(
    cnn_image_encoder(24),
    question_encoder(data),
    num_answers=len(data["answer_vocabulary"]),
    answer_vocabulary=data["answer_vocabulary"],
    fusion="cross_attention",
)
vqa.compile(optimizer=keras.optimizers.Adam(3e-3))  # sparse softmax CE on answer ids
history = vqa.fit(
    train["inputs"], train["answers"], batch_size=64, epochs=20, verbose=0
)
predictions = vqa.predict_answers(test["inputs"])
# One answer per question: ten identical "human" answers, so the VQA accuracy
# min(#matches / 3, 1) is exact-match accuracy.
accuracy = vqa_accuracy(predictions, [[a] * 10 for a in test["answer_texts"]])
hits = np.asarray(predictions) == np.asarray(test["answer_texts"])
assert abs(accuracy - hits.mean()) < 1e-6, (accuracy, hits.mean())
train_accuracy = history.history["accuracy"][-1]
print(f"train accuracy {train_accuracy:.3f}")
print(f"test VQA accuracy {accuracy:.3f} vs answer prior {prior:.3f}")
kinds = np.asarray(test["question_types"])
by_type = {}
for i, kind in enumerate(data["question_types"]):
    by_type[kind] = hits[kinds == i].mean()
    print(f"  {kind:6s} questions: {by_type[kind]:.3f}")
for q, p, a in list(zip(test["questions"], predictions, test["answer_texts"]))[:5]:
    print(f"  {q:32s} predicted {p!r:10s} true {a!r}")
assert train_accuracy > 0.55, f"train accuracy {train_accuracy:.3f} <= 0.55"
assert accuracy > prior + 0.15, f"accuracy {accuracy:.3f}, prior {prior:.3f}"
# Questions about an object's colour or shape need the image, not only the prior.
assert by_type["color"] > 0.5 and by_type["shape"] > 0.5, by_type"""
    ),
    new_markdown_cell(
        """## Video question answering

`VideoEncoder(frame_encoder, num_frames)` folds the frames into the batch, runs the same
frame encoder on each, adds a learned **temporal position embedding**, applies a
transformer block (self-attention over time) and pools. The frame encoder here flattens
a small CNN feature map, so each frame vector says *where* the shape is; the temporal
block compares frames to see *which way* it moved. Without the temporal position
embedding a reversed clip would look identical, so "left" and "right" could not be told
apart."""
    ),
    new_code_cell(
        """videos = load_moving_shapes_videos(num_train=1536, num_test=512)
vtrain, vtest = videos["train"], videos["test"]
fig, axes = plt.subplots(2, 4, figsize=(7, 4))
for row, i in enumerate((0, 1)):
    for t, ax in enumerate(axes[row]):
        ax.imshow(vtrain["inputs"]["videos"][i, t])
        ax.axis("off")
    axes[row, 0].set_title(
        f"{vtrain['questions'][i]} -> {vtrain['answer_texts'][i]}",
        fontsize=7,
        loc="left",
    )
display(fig)
plt.close(fig)


def cnn_frame_encoder(size, width=16):
    frames = keras.Input((size, size, 3), name="frames")
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(frames)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    return keras.Model(frames, keras.layers.Dense(width)(keras.layers.Flatten()(x)))


video_encoder = VideoEncoder(
    cnn_frame_encoder(16), num_frames=videos["num_frames"], output_mode="both"
)
video_qa = VQAModel(
    video_encoder,
    question_encoder(videos),
    num_answers=len(videos["answer_vocabulary"]),
    answer_vocabulary=videos["answer_vocabulary"],
    fusion="cross_attention",
)
print("inputs:", sorted(video_qa.input))
assert video_qa.visual_key == "videos", video_qa.visual_key
video_qa.compile(optimizer=keras.optimizers.Adam(4e-3))
video_qa.fit(vtrain["inputs"], vtrain["answers"], batch_size=128, epochs=12, verbose=0)
vpred = np.asarray(video_qa.predict_answers(vtest["inputs"]))
vtruth = np.asarray(vtest["answer_texts"])
vaccuracy = float(np.mean(vpred == vtruth))
vprior = answer_prior(vtest)
motion = vtest["question_types"] == videos["question_types"].index("direction")
keys = ("answers", "questions", "question_types")
motion_prior = answer_prior({k: np.asarray(vtest[k])[motion] for k in keys})
print(f"test video-QA accuracy {vaccuracy:.3f} vs answer prior {vprior:.3f}")
motion_accuracy = float(np.mean(vpred[motion] == vtruth[motion]))
print(f"  direction questions: {motion_accuracy:.3f} (prior {motion_prior:.3f})")
assert vaccuracy > vprior + 0.25, f"accuracy {vaccuracy:.3f}, prior {vprior:.3f}"
# No single frame answers a direction question: they need the temporal block.
assert motion_accuracy > motion_prior + 0.25, (motion_accuracy, motion_prior)"""
    ),
    new_markdown_cell(
        """**Play the clips backwards.** If the model really reads motion, reversing the
frames of a clip should reverse its answer: "left" becomes "right", "up" becomes
"down"."""
    ),
    new_code_cell(
        """opposite = {"left": "right", "right": "left", "up": "down", "down": "up"}
reversed_inputs = dict(vtest["inputs"], videos=vtest["inputs"]["videos"][:, ::-1])
rpred = np.asarray(video_qa.predict_answers(reversed_inputs))
solved = motion & (vpred == vtruth)
flipped = np.mean([rpred[i] == opposite[vtruth[i]] for i in np.flatnonzero(solved)])
print(f"{flipped:.0%} of the correctly answered direction questions flip when reversed")
assert flipped > 0.5, f'only {flipped:.0%} of them flip'"""
    ),
    new_markdown_cell("## Saving"),
    new_code_cell(
        """import tempfile

path = os.path.join(tempfile.mkdtemp(), "video_qa.keras")
video_qa.save(path)
restored = keras.saving.load_model(path)
sample = {k: v[:8] for k, v in vtest["inputs"].items()}
np.testing.assert_allclose(
    keras.ops.convert_to_numpy(restored(sample)["logits"]),
    keras.ops.convert_to_numpy(video_qa(sample)["logits"]),
    atol=1e-5,
)
print(type(restored).__name__, type(restored.image_encoder).__name__, "reloaded")
print(f"total {time.time() - start:.0f}s")"""
    ),
    new_markdown_cell(
        """See `docs/concepts.md` (section *Applications*) for the equations. This
notebook is the learning test of `VQAModel` (CI executes it under one backend);
`tests/models/vqa_test.py` and `tests/models/video_qa_test.py` check every fusion,
saving, padding, mixed precision and bad input with tiny untrained models."""
    ),
]

write_notebook(cells, os.path.join(HERE, "11_vqa.ipynb"))
