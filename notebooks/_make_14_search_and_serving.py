"""Generate notebooks/14_search_and_serving.ipynb.

Run: python notebooks/_make_14_search_and_serving.py
"""

import os

from _notebook_file import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = os.path.dirname(os.path.abspath(__file__))

cells = [
    new_markdown_cell(
        """# 14 · From a pretrained checkpoint to search and serving

The path most people take with a CLIP-style library, in five `keras-mm` commands:

```bash
keras-mm train --init siglip_tiny --dataset photos.csv --output run # fine-tune
keras-mm classify run --images tree --output classified               # zero-shot labels
keras-mm index run --images photos --output photos.index              # embed once
keras-mm search photos.index "an orange cat" --output found           # query by text
keras-mm export run                                                   # SavedModel
```

`--init` takes a Hugging Face CLIP / SigLIP checkpoint directory or a keras-hub preset
directory (here a **tiny random keras-hub SigLIP preset** written by the notebook:
nothing is downloaded, and a real preset directory such as `siglip_base_patch16_224`
takes its place unchanged). The run keeps the checkpoint's own tokenizer and image
normalisation, and every later command reads images and texts exactly as training did.
The data are the photographs that ship inside scikit-image, captioned by hand.

The commands are called in this process with `keras_mm.cli.main([...])`, which takes
the same arguments as the shell command and returns its exit code. Every result is
checked with `assert` against the same computation done in Python with the run's model:
the rankings of `classify` and `search`, and the SavedModel's raw-input endpoints
(strings in, JPEG/PNG bytes in) against `encode_text` / `encode_image`."""
    ),
    new_code_cell(
        """import csv
import io
import json
import os
import re
import shutil
import tempfile
import warnings

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # offline: nothing is downloaded

import keras
import keras_hub
import numpy as np
import PIL.Image
import sentencepiece
import skimage.data
from IPython.display import display

from keras_mm.cli import main
from keras_mm.data import ImageTextDataset

print("backend:", keras.backend.backend())
keras.utils.set_random_seed(0)
os.chdir(tempfile.mkdtemp())  # every path below is relative to a fresh folder


def show(png, width=720):
    # A picture the CLI wrote, at display size in 256 colours (a small notebook file).
    image = PIL.Image.open(png).convert("RGB")
    image.thumbnail((width, 2 * width))
    display(image.quantize(256))"""
    ),
    new_markdown_cell(
        """## 1 · Photographs, captions and a class-per-folder tree

scikit-image ships a few dozen test images in its package folder. We take twenty
JPEG and PNG photographs, save them into `photos/` at 128 pixels at most (so that the
notebook runs in seconds; full-size files go through the same commands), and write
`photos.csv` in the open_clip layout (a `filepath` and a `title` column), one caption
each. The same files, sorted into one folder per class, make the tree that `classify`
scores."""
    ),
    new_code_cell(
        """SKIMAGE = os.path.dirname(skimage.data.__file__)
PHOTOS = {  # file: (class, caption)
    "astronaut.png": ("person", "a woman astronaut in a white space suit"),
    "camera.png": ("person", "a man with a camera on a grey field"),
    "chelsea.png": ("animal", "an orange cat with stripes"),
    "horse.png": ("animal", "a black horse on a white background"),
    "coffee.png": ("object", "a red cup of coffee on a white plate"),
    "coins.png": ("object", "grey coins on a black background"),
    "clock_motion.png": ("object", "a clock on a wall"),
    "hubble_deep_field.jpg": ("sky", "many galaxies in the deep black sky"),
    "moon.png": ("sky", "the grey surface of the moon"),
    "rocket.jpg": ("vehicle", "a white rocket on the launch pad"),
    "motorcycle_left.png": ("vehicle", "a red motorcycle in a garage"),
    "motorcycle_right.png": ("vehicle", "a red motorcycle seen from the right"),
    "brick.png": ("texture", "a grey brick wall"),
    "grass.png": ("texture", "green grass seen from above"),
    "gravel.png": ("texture", "grey gravel on the ground"),
    "cell.png": ("microscope", "a cell under a microscope"),
    "ihc.png": ("microscope", "a stained tissue under a microscope"),
    "retina.jpg": ("microscope", "the red retina of an eye"),
    "page.png": ("text", "a page of printed text"),
    "text.png": ("text", "black text on a white background"),
}
os.makedirs("photos")
with open("photos.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["filepath", "title"])
    for name, (label, caption) in PHOTOS.items():
        photo = PIL.Image.open(os.path.join(SKIMAGE, name))
        photo.thumbnail((128, 128))  # in place, keeping the aspect ratio
        photo.save(os.path.join("photos", name))  # .jpg: JPEG, .png: PNG
        writer.writerow([os.path.join("photos", name), caption])
        os.makedirs(os.path.join("tree", label), exist_ok=True)
        shutil.copy(os.path.join("photos", name), os.path.join("tree", label, name))
LABELS = sorted({label for label, _ in PHOTOS.values()})
print(len(PHOTOS), "photographs;", "classes:", ", ".join(LABELS))
print(open("photos.csv").read().splitlines()[:3])"""
    ),
    new_markdown_cell(
        """## 2 · A stand-in for a downloaded checkpoint

A keras-hub preset directory as `save_to_preset` writes it (`config.json`,
`model.weights.h5`, `tokenizer.json`, `preprocessor.json`, the tokenizer's assets), of
a tiny random SigLIP: 32-pixel images, one transformer layer per tower, the sigmoid
loss. SigLIP's tokenizer is a SentencePiece model (32,000 pieces in the real ones);
ours is trained here, in a fraction of a second, on the texts this notebook uses, with
`sentencepiece` (a dependency of keras-hub): `<unk>` and the end token `</s>`, which
also pads, as SigLIP's tokenizer expects."""
    ),
    new_code_cell(
        """QUERIES = ["an orange cat", "a red motorcycle", "the moon in the sky"]
TEMPLATES = ["a photo of a {}.", "a picture of the {}."]
texts = [caption for _, caption in PHOTOS.values()] + QUERIES + LABELS + TEMPLATES

spiece = io.BytesIO()  # a SentencePiece model of these texts (SigLIP's tokenizer)
sentencepiece.SentencePieceTrainer.train(
    sentence_iterator=iter(texts), model_writer=spiece, vocab_size=120,
    hard_vocab_limit=False, unk_id=0, eos_id=1, bos_id=-1, pad_id=-1,
    minloglevel=2,  # quiet
)  # fmt: skip
tokenizer = keras_hub.models.SigLIPTokenizer(proto=spiece.getvalue())
vision = keras_hub.models.SigLIPVisionEncoder(
    patch_size=8, hidden_dim=32, num_layers=1, num_heads=4, intermediate_dim=64,
    image_shape=(32, 32, 3),
)
text = keras_hub.models.SigLIPTextEncoder(
    vocabulary_size=tokenizer.vocabulary_size(), embedding_dim=32, hidden_dim=32,
    num_layers=1, num_heads=4, intermediate_dim=64, max_sequence_length=16,
)
backbone = keras_hub.models.SigLIPBackbone(vision, text)
backbone.save_to_preset("siglip_tiny")
preprocessor = keras_hub.models.SigLIPPreprocessor(tokenizer, sequence_length=16)
preprocessor.save_to_preset("siglip_tiny")
print(tokenizer.vocabulary_size(), "tokens;", sorted(os.listdir("siglip_tiny")))"""
    ),
    new_markdown_cell(
        """## 3 · Fine-tune: `keras-mm train --init`

```bash
keras-mm train --init siglip_tiny --dataset photos.csv --epochs 2 --batch-size 6 \\
    --learning-rate 0.002 --output run
```

The preset fixes the architecture, the loss (SigLIP's sigmoid loss, with its learned
temperature and bias), the image size (32), the sequence length (16) and the
tokenizer; the run directory keeps the tokenizer (`run/preprocessor/`) and the image
mean and standard deviation (`run.json`, `"inputs"`: SigLIP's 0.5 and 0.5), so that
`classify`, `index`, `search` and `export` need nothing but `run/`. (`--lock-image` trains the
text side only, LiT; `--image-lr-multiplier 0.1` slows the image tower down.) A CSV
without a test split keeps a tenth of its images for testing (chosen by a hash of
their path: one photograph here), so this is two epochs of three batches: enough to
show the path, far too little to learn anything."""
    ),
    new_code_cell(
        """with warnings.catch_warnings():
    # Keras cannot know the length of a streamed dataset before its first epoch
    # ends, and says so ("Your input ran out of data"); the CLI trains every batch.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    code = main([
        "train", "--init", "siglip_tiny", "--dataset", "photos.csv", "--epochs", "2",
        "--batch-size", "6", "--learning-rate", "0.002", "--output", "run",
        "--verbose", "0",
    ])  # fmt: skip
assert code == 0
with open("run/run.json") as f:
    run_config = json.load(f)
with open("run/checkpoint.json") as f:
    history = json.load(f)["history"]
print("losses per epoch:", [round(h["loss"], 3) for h in history])
print("inputs:", run_config["inputs"])"""
    ),
    new_markdown_cell(
        """## 4 · Classify a folder: `keras-mm classify`

```bash
keras-mm classify run --images tree --template "a photo of a {}." \\
    --template "a picture of the {}." --output classified
```

The tree's folder names are the labels. Each label is written into every template
(`classify` writes "an" for "a" before a vowel: "a photo of an object."), the prompt
embeddings are averaged per label (CLIP's prompt ensembling), and each image gets the
labels closest to it. A tree also gives the accuracy and a confusion matrix
(`classified/metrics.json`), and a contact sheet of the images with their top label
(green where right). A random checkpoint fine-tuned for a few steps is no classifier:
what matters here is that the numbers are the model's, checked below."""
    ),
    new_code_cell(
        """argv = ["classify", "run", "--images", "tree", "--output", "classified"]
for template in TEMPLATES:
    argv += ["--template", template]
assert main(argv) == 0
with open("classified/metrics.json") as f:
    metrics = json.load(f)
print("confusion matrix (rows: true class, columns: predicted class):")
for label, row in zip(metrics["labels"], metrics["confusion_matrix"]):
    print(f"{label:>10}", *row)
show("classified/contact_sheet.png")"""
    ),
    new_markdown_cell(
        """The same ranking in Python, with the run's model: texts through the
checkpoint's tokenizer (`preprocessor` above; the run keeps a copy in
`run/preprocessor/`), images through `ImageTextDataset` with the run's image size,
mean and standard deviation (the stream that training read), then `encode_text` /
`encode_image`, cosine similarities and the best label in NumPy."""
    ),
    new_code_cell(
        """model = keras.saving.load_model("run/model.keras", compile=False)
inputs = run_config["inputs"]


def unit(x):
    x = np.asarray(x, dtype="float64")
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def embed_texts(texts):
    tokens = preprocessor({"prompts": list(texts), "images": None})
    tokens = {k: keras.ops.convert_to_numpy(v) for k, v in tokens.items()}
    return np.asarray(model.encode_text(tokens))


stream = ImageTextDataset(
    "photos", format="images", batch_size=8, image_size=inputs["image_size"],
    normalization=(inputs["mean"], inputs["std"]), shuffle=False,
    drop_remainder=False, with_group_ids=False, with_refs=True,
    with_texts=False,  # a folder of images: no texts to tokenize
)  # fmt: skip
batches = list(stream)
names = [os.path.basename(r.decode()) for b in batches for r in b["refs"]]
pixels = np.concatenate([b["images"] for b in batches])  # what training saw
images = unit(model.encode_image(pixels))  # (20, 32), unit rows

prompts = [
    [re.sub(r"\\ba (?=[aeiou])", "an ", t.format(label)) for label in LABELS]
    for t in TEMPLATES
]  # "a photo of an object."
classes = unit(np.mean([unit(embed_texts(p)) for p in prompts], axis=0))  # (8, 32)
with open("classified/predictions.json") as f:
    predictions = json.load(f)["predictions"]
for p in predictions:
    image = images[names.index(os.path.basename(p["file"]))]
    scores = dict(zip(LABELS, image @ classes.T))  # cosine similarity per label
    for label, score in zip(p["labels"], p["scores"]):
        assert abs(scores[label] - score) < 1e-5
    assert abs(p["scores"][0] - max(scores.values())) < 1e-5  # the best label first
    assert p["scores"] == sorted(p["scores"], reverse=True)
    assert p["true_label"] == os.path.dirname(p["file"])
accuracy = np.mean([p["labels"][0] == p["true_label"] for p in predictions])
assert metrics["accuracy"] == accuracy
print(f"classify == NumPy for {len(predictions)} images; accuracy {accuracy:.0%}")"""
    ),
    new_markdown_cell(
        """## 5 · Index once, search by text and by image

```bash
keras-mm index run --images photos --output photos.index
keras-mm search photos.index "an orange cat" --top-k 5 --output found
keras-mm search photos.index --image photos/chelsea.png --top-k 5 --output found
```

`index` embeds the collection in one streaming pass (`photos.index/embeddings.npy`,
unit rows, which `search` memory-maps, and `files.txt`); `search` ranks it exactly by
cosine similarity, prints the top k and draws them (`found/search.png`). Each result
is checked against NumPy on the embeddings computed above."""
    ),
    new_code_cell(
        """def check_search(query_embedding):
    with open("found/search.json") as f:
        results = json.load(f)["results"]
    want = images @ query_embedding
    top = np.argsort(-want, kind="stable")[: len(results)]
    for r, i in zip(results, top):
        j = names.index(os.path.basename(r["file"]))
        assert abs(r["score"] - want[j]) < 1e-5
        assert j == i or abs(want[j] - want[i]) < 1e-5  # the same file, or a tie
    return [os.path.basename(r["file"]) for r in results]


assert main(["index", "run", "--images", "photos", "--output", "photos.index"]) == 0
indexed = np.load("photos.index/embeddings.npy", mmap_mode="r")  # memory-mapped
with open("photos.index/files.txt") as f:
    rows = [names.index(os.path.basename(line.strip())) for line in f]
assert np.allclose(indexed, images[rows], atol=1e-5)

query = "an orange cat"
argv = ["search", "photos.index", query, "--top-k", "5", "--output", "found"]
assert main(argv) == 0
check_search(unit(embed_texts([query]))[0])
show("found/search.png")"""
    ),
    new_code_cell(
        """argv = ["search", "photos.index", "--image", "photos/chelsea.png", "--top-k", "5"]
assert main(argv + ["--output", "found"]) == 0
found = check_search(images[names.index("chelsea.png")])
assert found[0] == "chelsea.png"  # a photograph finds itself first
show("found/search.png")"""
    ),
    new_markdown_cell(
        """## 6 · Export, and serve strings and image bytes

```bash
keras-mm export run   # writes run/saved_model
```

Besides the tensor endpoints (`serve`, `encode_image`, `encode_text`), the SavedModel
has raw-input ones that take what a client has: `encode_text_strings` tokenizes a
batch of strings inside the graph with the run's tokenizer, and `encode_image_bytes`
decodes, resizes, crops and normalises encoded JPEG/PNG bytes inside the graph as the
training stream does. A TensorFlow Serving client needs no tokenizer and no image
code. The tokenizer ops come from TensorFlow Text: `import tensorflow_text` registers
them (docs/serving.md shows how to load them in a process without Keras)."""
    ),
    new_code_cell(
        """assert main(["export", "run"]) == 0

import logging

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

logging.getLogger("absl").setLevel(logging.ERROR)  # JAX: "gradients were not saved"
served = tf.saved_model.load("run/saved_model")
got = served.encode_text_strings(tf.constant(QUERIES))["text_embeddings"]
gap_text = np.abs(got.numpy() - embed_texts(QUERIES)).max()

files = ["chelsea.png", "rocket.jpg", "hubble_deep_field.jpg", "coffee.png"]
data = [open(os.path.join("photos", name), "rb").read() for name in files]
got = served.encode_image_bytes(tf.constant(data))["image_embeddings"]
want = model.encode_image(pixels[[names.index(name) for name in files]])
gap_image = np.abs(got.numpy() - np.asarray(want)).max()
print(f"max |SavedModel - Keras|: strings {gap_text:.0e}, image bytes {gap_image:.0e}")
assert gap_text < 1e-5 and gap_image < 1e-5"""
    ),
]

write_notebook(cells, os.path.join(HERE, "14_search_and_serving.ipynb"))
