"""Quality of a text-to-image run, judged by a separately trained classifier.

1. Trains a supervised classifier (3 conv + 2 dense layers, softmax over the
   24 shapes classes) on 8,000 shapes images from another seed than the run's.
   (Trained on 4,000 it read 99.3% of real test images but only 97.9% of a
   tokenizer's reconstructions; on 8,000, 100% and 99.6%: the smaller judge
   was fragile on images without the pixel noise.)
2. Tokenizer: the fraction of held-out images whose reconstruction
   `decode(encode(x))` the classifier gives the image's class (target >= 98%).
3. No re-ranking: for each of the 24 class prompts "a {colour} {shape}",
   `--samples` samples with `keras-mm generate`'s default settings (guidance
   scale 2 and top-p 0.9 for runs trained with prompt dropout); the fraction
   recognised as the prompted class (target >= 90%). Plain sampling
   (temperature 1, no guidance, no filtering) is measured too, for reference.
4. CLIP re-ranking: `--rounds` times per prompt, 8 samples (same settings) of
   which CLIP keeps the best; the fraction of kept samples recognised (target
   >= 97%). CLIP is a given `--clip-run`, or one the script trains on the same
   24 classes.

Usage:
    keras-mm train --family text-to-image --dataset shapes --output RUN
    python benchmarks/text_to_image_quality.py RUN [--clip-run CLIP_RUN]
"""

import argparse
import json
import os
import resource
import time

import keras
import numpy as np

from keras_mm.cli.families import conv_image_encoder, text_encoder
from keras_mm.cli.text_to_image import DEFAULT_GUIDANCE_SCALE, DEFAULT_TOP_P
from keras_mm.data import load_shapes
from keras_mm.models import CLIP


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def train_classifier(image_size, seed, epochs, num_train=8000):
    data = load_shapes(
        num_train=num_train,
        num_test=1000,
        num_compositional=0,
        image_size=image_size,
        held_out=[],
        seed=seed,
    )
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((image_size, image_size, 3))]
    for width in (32, 64, 64):
        layers.append(keras.layers.Conv2D(width, 3, padding="same", activation="relu"))
        layers.append(keras.layers.MaxPooling2D())
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(24, activation="softmax"),
    ]
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(
        data["train"]["inputs"]["images"],
        data["train"]["labels"],
        batch_size=64,
        epochs=epochs,
        verbose=0,
    )
    test = data["test"]
    accuracy = accuracy_of(model, test["inputs"]["images"], test["labels"])
    return model, accuracy, test, data["class_names"]


def train_clip(image_size, vocabulary, epochs, seed=1):
    data = load_shapes(
        num_train=4000,
        num_test=10,
        num_compositional=0,
        image_size=image_size,
        held_out=[],
        seed=seed,
    )
    keras.utils.set_random_seed(seed)
    clip = CLIP(
        conv_image_encoder((image_size, image_size, 3), 64),
        text_encoder(len(vocabulary), data["sequence_length"], 64),
        embed_dim=64,
        vocabulary=vocabulary,
    )
    clip.compile(optimizer=keras.optimizers.AdamW(2e-3))
    train = data["train"]["inputs"]
    clip.fit(train, data["train"]["labels"], batch_size=64, epochs=epochs, verbose=0)
    return clip


def load_clip(path):
    clip = keras.saving.load_model(os.path.join(path, "model.keras"), compile=False)
    if clip.vocabulary is None:
        with open(os.path.join(path, "vocabulary.json"), encoding="utf-8") as f:
            clip.vocabulary = json.load(f)
    return clip


def accuracy_of(classifier, images, labels):
    predicted = classifier.predict(images, batch_size=256, verbose=0).argmax(-1)
    return float(np.mean(predicted == labels))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a `keras-mm train --family text-to-image` run")
    parser.add_argument("--clip-run", help="a clip run (default: train one here)")
    parser.add_argument("--samples", type=int, default=16, help="per prompt")
    parser.add_argument("--rounds", type=int, default=4, help="re-ranked picks")
    parser.add_argument("--classifier-epochs", type=int, default=10)
    parser.add_argument("--clip-epochs", type=int, default=6)
    parser.add_argument("--output", help="write the numbers as JSON here")
    args = parser.parse_args()

    started, cpu = time.time(), cpu_seconds()
    model = keras.saving.load_model(os.path.join(args.run, "model.keras"))
    size = model.image_tokenizer.image_shape[0]
    classifier, real_accuracy, test, class_names = train_classifier(
        size, seed=7, epochs=args.classifier_epochs
    )
    print(f"classifier accuracy on real test images: {real_accuracy:.4f}", flush=True)
    images, labels = test["inputs"]["images"], test["labels"]
    reconstructions = model.image_tokenizer.reconstruct(images)
    retention = accuracy_of(classifier, reconstructions, labels)
    read = classifier.predict(images, batch_size=256, verbose=0).argmax(-1)
    agreement = accuracy_of(classifier, reconstructions, read)
    print(
        f"tokenizer reconstructions keep the class: {retention:.4f} "
        f"(the judge's reading of the original: {agreement:.4f})",
        flush=True,
    )

    prompts = [f"a {name}" for name in class_names]
    targets = np.repeat(np.arange(len(prompts)), args.samples)
    settings = {}
    if model.prompt_dropout:  # `keras-mm generate`'s defaults for such runs
        settings = {"guidance_scale": DEFAULT_GUIDANCE_SCALE, "top_p": DEFAULT_TOP_P}
    samples = model.generate(prompts, num_samples=args.samples, seed=0, **settings)
    predicted = classifier.predict(samples, batch_size=256, verbose=0).argmax(-1)
    recognised = float(np.mean(predicted == targets))
    per_class = {
        name: float(np.mean(predicted[targets == i] == i))
        for i, name in enumerate(class_names)
    }
    print(f"samples recognised (no re-ranking, {settings}): {recognised:.4f}")
    samples = model.generate(prompts, num_samples=args.samples, seed=0)
    predicted = classifier.predict(samples, batch_size=256, verbose=0).argmax(-1)
    plain = float(np.mean(predicted == targets))
    print(f"samples recognised (plain sampling, temperature 1): {plain:.4f}")

    if args.clip_run:
        clip = load_clip(args.clip_run)
    else:
        clip = train_clip(size, model.vocabulary, args.clip_epochs)
    picks = [
        model.generate(
            prompts, num_samples=8, seed=100 + r, rerank=clip, keep=1, **settings
        )
        for r in range(args.rounds)
    ]
    picked = np.concatenate(picks)
    picked_targets = np.tile(np.arange(len(prompts)), args.rounds)
    predicted = classifier.predict(picked, batch_size=256, verbose=0).argmax(-1)
    reranked = float(np.mean(predicted == picked_targets))
    print(f"samples recognised (CLIP re-rank of 8): {reranked:.4f}", flush=True)

    results = {
        "backend": keras.backend.backend(),
        "classifier_real_accuracy": real_accuracy,
        "tokenizer_class_retention": retention,
        "tokenizer_agrees_with_judge_on_original": agreement,
        "sampling_settings": settings,
        "samples_recognised_no_rerank": recognised,
        "samples_recognised_plain_sampling": plain,
        "min_per_class_no_rerank": min(per_class.values()),
        "samples_recognised_clip_rerank_of_8": reranked,
        "samples_per_prompt": args.samples,
        "reranked_picks_per_prompt": args.rounds,
        "per_class_no_rerank": per_class,
        "wall_seconds": round(time.time() - started, 1),
        "cpu_seconds": round(cpu_seconds() - cpu, 1),
        "load_average": os.getloadavg(),
    }
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
