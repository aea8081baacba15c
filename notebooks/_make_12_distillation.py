"""Generate notebooks/12_distillation.ipynb.

Run: python notebooks/_make_12_distillation.py
"""

import os

from _notebook_file import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = os.path.dirname(os.path.abspath(__file__))

cells = [
    new_markdown_cell(
        """# 12 · Knowledge distillation: a frozen teacher trains a small student

Seed tutorial §3.3.3. `keras_mm.models.Distiller(teacher, student)` freezes a trained
teacher and trains a smaller student on

    L = alpha · L_task + (1 − alpha) · L_KD + feature_weight · L_feat

* `L_KD = T² · KL(softmax(t/T) ‖ softmax(s/T))` (`keras_mm.losses.distillation_loss`,
  Hinton et al. 2015): the student matches the teacher's softened class distribution,
  which says how similar the wrong classes are ("dark knowledge");
* `L_feat = mean ‖P·s_f − t_f‖²`: a learned projection `P` of the student's penultimate
  features onto the teacher's (FitNets), so the widths may differ;
* `L_task`: cross-entropy with the labels, when there are labels.

Teachers can be classifiers (any functional model with logits, `VQAModel` included) or
CLIP-type models (then `L_KD` is on the image-text similarity matrix and the features
are both embeddings). Training is `compile(optimizer)` + `fit`; afterwards
`distiller.student` is an ordinary model, saved and used alone.

Here: 24-class coloured shapes (`load_shapes`, 16×16 pixels), a CNN teacher, and a
student with **about a quarter of its parameters**. Every claim is checked with `assert`."""
    ),
    new_code_cell(
        """import os

# Tiny models: one intra-op thread is fastest for torch on a shared CPU.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import tempfile
import time

import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

if keras.backend.backend() == "torch":
    import torch

    torch.set_num_threads(1)

from keras_mm.data import load_shapes
from keras_mm.models import Distiller

keras.utils.set_random_seed(0)
print("backend:", keras.backend.backend())
start = time.time()
data = load_shapes(
    num_train=1536, num_test=512, num_compositional=0, held_out=[], image_size=16
)
x, y = data["train"]["inputs"]["images"], data["train"]["labels"]
x_test, y_test = data["test"]["inputs"]["images"], data["test"]["labels"]
num_classes = len(data["class_names"])
print(num_classes, "classes, e.g.", data["class_names"][:4])"""
    ),
    new_markdown_cell("## Teacher and student"),
    new_code_cell(
        """def cnn(width, hidden, name):
    return keras.Sequential(
        [
            keras.Input((16, 16, 3), name="images"),
            keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation="relu", name="hidden"),
            keras.layers.Dense(num_classes, name="logits"),
        ],
        name=name,
    )


def accuracy(model):
    return float(np.mean(model.predict(x_test, verbose=0).argmax(-1) == y_test))


teacher = cnn(24, 128, "teacher")
teacher.compile(
    optimizer=keras.optimizers.Adam(2e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
)
teacher.fit(x, y, batch_size=64, epochs=10, verbose=0)
teacher_accuracy = accuracy(teacher)
student = cnn(16, 48, "student")
print(f"teacher: {teacher.count_params():,} params, accuracy {teacher_accuracy:.3f}")
print(f"student: {student.count_params():,} params")
assert teacher_accuracy > 0.8, teacher_accuracy
assert student.count_params() < teacher.count_params() / 2"""
    ),
    new_markdown_cell(
        """## Distillation

A temperature of 4 softens the teacher's distribution; `alpha=0.3` keeps some weight on
the labels and `feature_weight=0.1` adds the feature-matching hint. The three terms are
logged separately by `fit`."""
    ),
    new_code_cell(
        """frozen = [keras.ops.convert_to_numpy(w).copy() for w in teacher.weights]
distiller = Distiller(teacher, student, temperature=4.0, alpha=0.3, feature_weight=0.1)
distiller.compile(optimizer=keras.optimizers.Adam(5e-3))
history = distiller.fit(x, y, batch_size=64, epochs=10, verbose=0)
student_accuracy = accuracy(student)

fig, ax = plt.subplots(figsize=(5, 3))
for term in ("task_loss", "distillation_loss", "feature_loss"):
    ax.plot(history.history[term], label=term)
ax.set_xlabel("epoch")
ax.set_yscale("log")
ax.legend()
display(fig)
plt.close(fig)
gap = teacher_accuracy - student_accuracy
print(f"teacher {teacher_accuracy:.3f}, student {student_accuracy:.3f}, gap {gap:+.3f}")
assert gap < 0.10, gap
for term in ("distillation_loss", "feature_loss", "task_loss"):
    values = history.history[term]
    assert values[-1] < 0.5 * values[0], (term, values)
for before, after in zip(frozen, teacher.weights):  # the teacher never moved
    np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(after))"""
    ),
    new_markdown_cell(
        """## The student alone

The student is the model you passed in; save it by itself and load it anywhere, with no
`Distiller` and no teacher."""
    ),
    new_code_cell(
        """path = os.path.join(tempfile.mkdtemp(), "student.keras")
distiller.student.save(path)
alone = keras.saving.load_model(path)
np.testing.assert_allclose(
    alone.predict(x_test, verbose=0), student.predict(x_test, verbose=0), atol=1e-5
)
assert isinstance(alone, keras.Sequential), type(alone)
print(type(alone).__name__, alone.name, f"{alone.count_params():,} parameters")
print(f"total {time.time() - start:.0f}s")"""
    ),
    new_markdown_cell(
        """**CLIP-type teachers.** `Distiller(clip_teacher, smaller_clip_student)`
distils the in-batch image-text similarity logits in both directions and matches both
embeddings through learned projections; the student's own contrastive loss is `L_task`
(`tests/models/distiller_test.py`). See `docs/concepts.md` (section *Applications*)."""
    ),
]

write_notebook(cells, os.path.join(HERE, "12_distillation.ipynb"))
