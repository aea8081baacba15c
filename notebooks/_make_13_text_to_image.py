"""Generate notebooks/13_text_to_image.ipynb.

Run: python notebooks/_make_13_text_to_image.py
"""

import os

from _notebook_file import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = os.path.dirname(os.path.abspath(__file__))

cells = [
    new_markdown_cell(
        """# 13 · Text-to-image generation: image tokenizer, autoregressive transformer, CLIP re-ranking

Seed tutorial §7.3.3 lists DALL-E (Ramesh et al., 2021) among the pretrained models a
multimodal practitioner uses. Its recipe has three parts, each a Keras model here:

1. **Stage 1, `keras_mm.models.ImageTokenizer`**: a VQ-VAE (van den Oord et al., 2017)
   turns a 32×32 image into an 8×8 grid of codes from a codebook of 512 vectors, and back.
   Gradients cross the quantiser with the straight-through estimator; the codebook follows
   exponential moving averages of the encoder outputs, and unused codes are restarted.
2. **Stage 2, `keras_mm.models.TextToImage`**: a decoder-only transformer over
   `[text tokens ; 64 image tokens]` with a causal mask, trained with cross-entropy on the
   image tokens of the frozen tokenizer's codes. `generate` samples image tokens one at a
   time with a key/value cache (temperature, top-k, top-p) and decodes them.
   Training with `prompt_dropout` also teaches it the empty prompt, so sampling can use
   **classifier-free guidance** (Ho & Salimans, 2022):
   `l = l_empty + s · (l_text − l_empty)`.
3. **Re-ranking**: a CLIP model scores every sample against its prompt, and the best are
   kept (`generate(rerank=clip)`), as DALL-E did.

The data are the procedural coloured shapes (`load_shapes`): 24 classes, four colours
times six shapes, at random sizes and positions. Quality is judged by a **separate
supervised classifier** trained on real shapes images of another seed: a sample counts if
the judge reads the prompted colour and shape.

`keras-mm train --family text-to-image --dataset shapes` trains the same two stages with
the same settings, checkpointed and resumable, and `keras-mm generate` writes PNG files.

*Running it:* the full run below takes about 12 minutes on 2 CPU cores (JAX); its
outputs are stored here. The test suite runs every notebook (each under one backend) and sets
`KERAS_MM_NOTEBOOK_SMOKE=1`, which shrinks every model and epoch count to check that the
code runs in seconds; the quality claims are asserted in the full run only."""
    ),
    new_code_cell(
        """import os

import time

import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from keras_mm.data import load_shapes
from keras_mm.encoders import ConvImageEncoder, TextEncoder
from keras_mm.models import CLIP, ImageTokenizer, TextToImage

SMOKE = os.environ.get("KERAS_MM_NOTEBOOK_SMOKE") == "1"
# The `keras-mm train --family text-to-image` defaults (keras_mm/cli/text_to_image.py).
SIZE = dict(
    train=8000, test=1000, tokenizer_epochs=12, epochs=12, width=128, layers=3,
    judge_epochs=10, clip_epochs=6, samples=16,
)
if SMOKE:
    SIZE = dict(
        train=256, test=96, tokenizer_epochs=1, epochs=1, width=16, layers=1,
        judge_epochs=1, clip_epochs=1, samples=8,
    )
print("backend:", keras.backend.backend(), "| smoke run" if SMOKE else "")
start = time.time()
keras.utils.set_random_seed(0)
data = load_shapes(
    num_train=SIZE["train"], num_test=SIZE["test"], num_compositional=0,
    held_out=[], image_size=32, seed=0,
)
images = data["train"]["inputs"]["images"]
token_ids = data["train"]["inputs"]["token_ids"]
vocabulary, class_names = data["vocabulary"], data["class_names"]
prompts = [f"a {name}" for name in class_names]
print(len(images), "training images,", len(class_names), "classes, e.g.", prompts[:3])
print("a caption:", " ".join(vocabulary[i] for i in token_ids[0] if i))


def show(rows, titles=None, scale=0.9):
    \"\"\"A grid of image rows (each row a list of (H, W, 3) images).\"\"\"
    rows = [list(r) for r in rows]
    fig, axes = plt.subplots(
        len(rows), len(rows[0]), squeeze=False,
        figsize=(scale * len(rows[0]), scale * len(rows) + 0.2),
    )
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            axes[r, c].imshow(np.clip(image, 0, 1), interpolation="nearest")
            axes[r, c].axis("off")
        if titles:
            axes[r, 0].set_title(titles[r], fontsize=7, loc="left")
    fig.tight_layout(pad=0.2)
    display(fig)
    plt.close(fig)"""
    ),
    new_markdown_cell(
        """## The judge

A small CNN trained on shapes images from another seed, supervised with the 24 class
labels. It never sees a generated image during training."""
    ),
    new_code_cell(
        """judge_data = load_shapes(
    num_train=SIZE["train"], num_test=SIZE["test"], num_compositional=0,
    held_out=[], image_size=32, seed=7,
)
judge = keras.Sequential(
    [keras.Input((32, 32, 3))]
    + [
        layer
        for width in (32, 64, 64)
        for layer in (
            keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
        )
    ]
    + [
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(len(class_names), activation="softmax"),
    ]
)
judge.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
judge.fit(
    judge_data["train"]["inputs"]["images"], judge_data["train"]["labels"],
    batch_size=64, epochs=SIZE["judge_epochs"], verbose=0,
)
test_images, test_labels = judge_data["test"]["inputs"]["images"], judge_data["test"]["labels"]


def recognised(samples, labels):
    \"\"\"Fraction of `samples` the judge reads as class `labels`.\"\"\"
    predicted = judge.predict(samples, batch_size=256, verbose=0).argmax(-1)
    return float(np.mean(predicted == labels))


judge_accuracy = recognised(test_images, test_labels)
print(f"judge accuracy on {len(test_labels)} real test images: {judge_accuracy:.3f}")
if not SMOKE:
    assert judge_accuracy > 0.98, judge_accuracy"""
    ),
    new_markdown_cell(
        """## Stage 1: the image tokenizer

`fit` minimises `mean (x − x̂)² + β · mean (z − sg(e))²` (reconstruction + commitment);
the codebook itself moves by moving averages, so there is no codebook loss term."""
    ),
    new_code_cell(
        """def cosine(rate, epochs, batches):
    return keras.optimizers.schedules.CosineDecay(
        0.0, epochs * batches - batches // 2, warmup_target=rate, warmup_steps=batches // 2
    )


tokenizer = ImageTokenizer(
    (32, 32, 3), num_codes=512, code_dim=16, hidden_dim=32, num_downsamples=2
)
batches = len(images) // 64
tokenizer.compile(
    optimizer=keras.optimizers.AdamW(cosine(2e-3, SIZE["tokenizer_epochs"], batches))
)
t = time.time()
history = tokenizer.fit(
    {"images": images}, batch_size=64, epochs=SIZE["tokenizer_epochs"], verbose=0
)
codes = tokenizer.encode(images)
print(f"stage 1: {time.time() - t:.0f} s; reconstruction MSE "
      f"{history.history['reconstruction'][-1]:.4f}; code grid {codes.shape[1:]}; "
      f"{len(np.unique(codes))} of {tokenizer.num_codes} codes in use")
reconstructions = tokenizer.reconstruct(test_images)
retention = recognised(reconstructions, test_labels)
print(f"reconstructions the judge reads as the image's class: {retention:.3f}")
show([test_images[:12], reconstructions[:12]], ["originals", "decode(encode(x))"])
if not SMOKE:
    assert retention >= 0.98, retention"""
    ),
    new_markdown_cell(
        """## Stage 2: the transformer

The tokenizer is frozen inside `TextToImage` (and saved with it). A tenth of the
training captions are replaced by the empty prompt (`prompt_dropout=0.1`), so the same
network also models images without text, which guidance needs."""
    ),
    new_code_cell(
        """model = TextToImage(
    tokenizer, vocabulary, text_length=token_ids.shape[1], hidden_dim=SIZE["width"],
    num_layers=SIZE["layers"], num_heads=4, prompt_dropout=0.1,
)
batches = len(codes) // 64
model.compile(optimizer=keras.optimizers.AdamW(cosine(2e-3, SIZE["epochs"], batches)))
t = time.time()
history = model.fit(
    {"token_ids": token_ids, "image_codes": codes},
    batch_size=64, epochs=SIZE["epochs"], verbose=0,
)
loss = history.history["image_loss"]
print(f"stage 2: {time.time() - t:.0f} s; image-token loss {loss[0]:.3f} -> "
      f"{loss[-1]:.3f} nats (uniform: ln 512 = {np.log(512):.2f})")
if not SMOKE:
    assert loss[-1] < 0.5 * np.log(512), loss"""
    ),
    new_markdown_cell(
        """## Samples for every class prompt

Eight samples per prompt with `keras-mm generate`'s default sampling: guidance scale 2
and nucleus (top-p) 0.9."""
    ),
    new_code_cell(
        """DEFAULT = dict(guidance_scale=2.0, top_p=0.9)
samples = model.generate(prompts, num_samples=8, seed=0, **DEFAULT)
show(samples.reshape(len(prompts), 8, 32, 32, 3), prompts, scale=0.75)"""
    ),
    new_markdown_cell(
        """## Sampling settings, measured

For each setting, `SIZE["samples"]` samples per prompt; *recognised* is the judge's
verdict, *distinct* the fraction of samples whose image tokens differ from every other
sample of the same prompt (diversity). Guidance trades diversity for fidelity, as does a
lower temperature or a smaller top-k."""
    ),
    new_code_cell(
        """n = SIZE["samples"]
targets = np.repeat(np.arange(len(prompts)), n)
settings = {
    "temperature 1": dict(),
    "temperature 0.7": dict(temperature=0.7),
    "top-k 16": dict(top_k=16),
    "top-p 0.9": dict(top_p=0.9),
    "guidance 2": dict(guidance_scale=2.0),
    "guidance 3": dict(guidance_scale=3.0),
    "guidance 2, top-p 0.9 (default)": DEFAULT,
}
measured = {}
for name, kwargs in settings.items():
    images_, codes_ = model.generate(
        prompts, num_samples=n, seed=1, return_codes=True, **kwargs
    )
    per_prompt = codes_.reshape(len(prompts), n, -1)
    distinct = np.mean(
        [len({c.tobytes() for c in group}) / n for group in per_prompt]
    )
    measured[name] = recognised(images_, targets)
    print(f"{name:32s} recognised {measured[name]:.3f}   distinct {distinct:.2f}")
default = measured["guidance 2, top-p 0.9 (default)"]
if not SMOKE:
    assert default > measured["temperature 1"] + 0.05, measured
    assert default >= 0.90, measured"""
    ),
    new_markdown_cell(
        """## CLIP re-ranking

DALL-E drew many samples per prompt and kept those CLIP ranked highest. Here a small
CLIP (`keras_mm.models.CLIP`, trained below on real shapes images and captions) scores
8 guided samples per prompt and the best is kept, 4 times per prompt."""
    ),
    new_code_cell(
        """clip = CLIP(
    ConvImageEncoder(image_shape=(32, 32, 3), hidden_dim=64),
    TextEncoder(
        vocabulary_size=len(vocabulary), max_sequence_length=token_ids.shape[1],
        hidden_dim=64, num_layers=2, num_heads=4, intermediate_dim=128,
    ),
    embed_dim=64,
    vocabulary=vocabulary,
)
clip.compile(optimizer=keras.optimizers.AdamW(2e-3))
clip.fit(  # class labels: same-class pairs in a batch count as positives
    {"images": images[:4000], "token_ids": token_ids[:4000]},
    data["train"]["labels"][:4000],
    batch_size=64, epochs=SIZE["clip_epochs"], verbose=0,
)
rounds = 4
picked = np.concatenate(
    [
        model.generate(
            prompts, num_samples=8, seed=100 + r, rerank=clip, keep=1, **DEFAULT
        )
        for r in range(rounds)
    ]
)
reranked = recognised(picked, np.tile(np.arange(len(prompts)), rounds))
print(f"recognised without re-ranking: {default:.3f}; "
      f"best of 8 by CLIP: {reranked:.3f}")
show(picked.reshape(rounds, len(prompts), 32, 32, 3)[:2], ["CLIP's picks, round 1", "round 2"],
     scale=0.6)
print(f"total {time.time() - start:.0f} s")
if not SMOKE:
    assert reranked >= 0.97, reranked"""
    ),
    new_markdown_cell(
        """**Next.** `keras-mm train --family text-to-image --dataset shapes --output RUN` and
`keras-mm generate RUN "a red circle" --num-samples 8 --rerank CLIP_RUN --output DIR`
do the same from the command line; `benchmarks/text_to_image_quality.py RUN` measures a
run with this notebook's judge (results in `benchmarks/RESULTS.md`)."""
    ),
]

write_notebook(cells, os.path.join(HERE, "13_text_to_image.ipynb"))
