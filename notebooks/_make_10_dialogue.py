"""Generate notebooks/10_dialogue.ipynb.

Run: python notebooks/_make_10_dialogue.py
"""

import os

from _notebook_file import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = os.path.dirname(os.path.abspath(__file__))

cells = [
    new_markdown_cell(
        """# 10 · Image-grounded multi-turn dialogue

Seed tutorial §6 (applications: multimodal dialogue), after *Visual Dialog* (Das et
al., 2017). A dialogue is a sequence of questions about one image; a later question
can refer back ("where is **it**?"), so an answer depends on the **image**, the
**dialogue history** and the **current question** together.
`keras_mm.models.DialogueModel` reads all three with one transformer over the joint
sequence `[image tokens; history tokens; question tokens]` and answers in both of
VisDial's ways:

* **ranking** (discriminative): score each of N candidate answers; report recall@K,
  mean reciprocal rank and mean rank with `keras_mm.metrics.ranking_metrics`;
* **generation**: decode the answer with the same transformer decoder as the
  `Captioner` (cross-attention to the fused tokens), greedily or by beam search.

The data are procedural and bundled: `keras_mm.data.load_shape_dialogues` gives each
scene of one or two shapes a 3-turn dialogue ("what colour is the circle ?" → "red",
"where is it ?" → "on the left", "is there a blue square ?" → "no", ...) with 10
candidates per turn: the truth, **every other answer of its type** and random others.
So two baselines matter: random ranking (R@1 = 1/10) and the **question prior**, the
best a model can do from the question alone. Every claim is checked with `assert`."""
    ),
    new_code_cell(
        """import os

# Tiny models: one intra-op thread is fastest for torch on a shared CPU.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import collections
import tempfile
import time

import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

if keras.backend.backend() == "torch":
    import torch

    torch.set_num_threads(1)

from keras_mm.data.shape_dialogues import load_shape_dialogues
from keras_mm.encoders import ImageEncoder
from keras_mm.metrics.dialogue_ranking import ranking_metrics
from keras_mm.models.dialogue import DialogueModel

keras.utils.set_random_seed(0)
print("backend:", keras.backend.backend())
start = time.time()"""
    ),
    new_markdown_cell("## A dialogue"),
    new_code_cell(
        """data = load_shape_dialogues(num_train=384, num_test=100, seed=0)
vocab = data["vocabulary"]
train, test = data["train"], data["test"]
print({k: v.shape for k, v in train["inputs"].items()})

two = next(i for i, s in enumerate(train["scenes"]) if len(s) == 2)
fig, ax = plt.subplots(figsize=(2.4, 2.4))
ax.imshow(train["inputs"]["images"][3 * two])
ax.axis("off")
display(fig)
plt.close(fig)
for row in range(3 * two, 3 * two + 3):
    print(f"history : {train['histories'][row]!r}")
    print(f"question: {train['questions'][row]}  ->  {train['answers'][row]}")
    print(f"candidates: {train['candidates'][row]} (true: {train['labels'][row]})")"""
    ),
    new_markdown_cell(
        """## Training: ranking and generation together

`fit(inputs, labels)`: the labels are the index of the true candidate (for the ranking
cross-entropy); `inputs["answer_ids"]` (`[START] answer [END]`) feeds the
teacher-forced generation loss. Both terms are logged."""
    ),
    new_code_cell(
        """encoder = ImageEncoder(
    image_shape=(32, 32, 3),
    patch_size=8,
    hidden_dim=32,
    num_layers=1,
    num_heads=2,
    intermediate_dim=64,
    use_class_token=False,
    pooling="mean",
    output_mode="sequence",
)
model = DialogueModel(
    encoder,
    vocabulary_size=len(vocab),
    history_length=24,
    question_length=8,
    answer_length=5,
    hidden_dim=32,
    num_layers=1,
    num_heads=2,
)
print(f"{model.count_params():,} parameters")
model.compile(optimizer=keras.optimizers.Adam(3e-3))
history = model.fit(
    train["inputs"], train["labels"], batch_size=32, epochs=8, verbose=0
)
for key in ("ranking_loss", "generation_loss"):
    values = history.history[key]
    print(key, np.round(values, 3).tolist())
    assert values[-1] < 0.6 * values[0], (key, values)"""
    ),
    new_markdown_cell("## Ranking the candidates"),
    new_code_cell(
        """counts = collections.defaultdict(collections.Counter)
for q, a in zip(train["questions"], train["answers"]):
    counts[q][a] += 1


def prior_scores(questions, candidates):
    # Training frequency of each candidate as the answer to that exact question.
    return np.array(
        [[counts[q][c] + 1e-3 * np.random.rand() for c in cs]
         for q, cs in zip(questions, candidates)]
    )


n_test = len(test["labels"])  # one batch: one compiled call
scores = model.predict(test["inputs"], batch_size=n_test, verbose=0)["candidate_scores"]
model_metrics = ranking_metrics(scores, test["labels"])
prior_metrics = ranking_metrics(
    prior_scores(test["questions"], test["candidates"]), test["labels"]
)
random_metrics = ranking_metrics(np.random.rand(*scores.shape), test["labels"])
print(f"{'':16s} " + " ".join(f"{k:>9s}" for k in model_metrics))
for name, m in (
    ("model", model_metrics),
    ("question prior", prior_metrics),
    ("random", random_metrics),
):
    print(f"{name:16s} " + " ".join(f"{v:9.3f}" for v in m.values()))

kinds = collections.defaultdict(list)
hit = scores.argmax(-1) == test["labels"]
for q, h in zip(test["questions"], hit):
    kinds[" ".join(q.split()[:3])].append(h)
print("R@1 by question:", {k: round(float(np.mean(v)), 2) for k, v in kinds.items()})

# The claims of this notebook (ranking).
assert model_metrics["r1"] > 1.0 / data["num_candidates"] + 0.3, model_metrics
assert model_metrics["r1"] > prior_metrics["r1"] + 0.1, (model_metrics, prior_metrics)
assert model_metrics["mrr"] > prior_metrics["mrr"], (model_metrics, prior_metrics)"""
    ),
    new_markdown_cell(
        """## Does the model read the history?

"where is it ?" and "what colour is it ?" in a two-shape scene can only be answered
by finding "it" in the earlier turns. Blank the history of those turns and the model
has to guess which shape is meant."""
    ),
    new_code_cell(
        """it_rows = np.array(
    [
        i
        for i, q in enumerate(test["questions"])
        if " it " in q and len(test["scenes"][test["scene_index"][i]]) == 2
    ]
)
# The whole test set with blank histories: the same shape as `scores`, one compile.
history_ids = test["inputs"]["history_ids"]
blank = {**test["inputs"], "history_ids": np.zeros_like(history_ids)}
blank_scores = model.predict(blank, batch_size=n_test, verbose=0)["candidate_scores"]
with_history = ranking_metrics(scores[it_rows], test["labels"][it_rows])
without = ranking_metrics(blank_scores[it_rows], test["labels"][it_rows])
print(f"{len(it_rows)} 'it' questions about two-shape scenes:")
print(f"  R@1 with the history {with_history['r1']:.3f}, blanked {without['r1']:.3f}")

# The claims of this notebook (history).
assert with_history["r1"] > without["r1"] + 0.05, (with_history, without)"""
    ),
    new_markdown_cell("## Generating the answers"),
    new_code_cell(
        """def decode(ids):
    return " ".join(vocab[i] for i in ids[1:] if i not in (0, data["end_token_id"]))


keys = ("images", "history_ids", "question_ids")
inputs = {k: test["inputs"][k] for k in keys}
generated = [decode(t) for t in model.generate(inputs, batch_size=n_test)]
beam = [
    decode(t)
    for t in model.generate(inputs, strategy="beam", num_beams=3, batch_size=n_test)
]
prior_answer = [counts[q].most_common(1)[0][0] for q in test["questions"]]
accuracy = {
    "greedy": np.mean([g == a for g, a in zip(generated, test["answers"])]),
    "beam (3)": np.mean([g == a for g, a in zip(beam, test["answers"])]),
    "question prior": np.mean([p == a for p, a in zip(prior_answer, test["answers"])]),
}
print({k: round(float(v), 3) for k, v in accuracy.items()})
for row in range(6):
    print(
        f"{test['questions'][row]:30s} model: {generated[row]:14s} "
        f"truth: {test['answers'][row]}"
    )

# The claims of this notebook (generation).
assert accuracy["greedy"] > accuracy["question prior"] + 0.1, accuracy
assert accuracy["beam (3)"] > accuracy["question prior"] + 0.05, accuracy"""
    ),
    new_code_cell(
        """path = os.path.join(tempfile.mkdtemp(), "dialogue.keras")
model.save(path)
restored = keras.saving.load_model(path)
np.testing.assert_array_equal(
    restored.generate(inputs, batch_size=n_test),
    model.generate(inputs, batch_size=n_test),
)
print(f"round trip ok; notebook ran in {time.time() - start:.0f} s")"""
    ),
    new_markdown_cell(
        """**Reading the results.** The question prior already ranks well above random,
because the candidates of a turn include answers of other types that the question
rules out; the model must also beat that prior, which needs the image. Generation is
scored by exact match with the true answer. VisDial's generative models are usually
*evaluated* by ranking the candidates by their likelihood; here the two heads are
trained together and evaluated separately, which keeps each one honest.

See `docs/concepts.md` (section *Applications: captioning and dialogue*) for the
equations and the tests."""
    ),
]

write_notebook(cells, os.path.join(HERE, "10_dialogue.ipynb"))
