"""End-to-end demo: fuse two modalities that each carry half of the label.

Run with `python -m keras_mm.demo` (any `KERAS_BACKEND`). It trains a classifier
on each modality alone and one per fusion layer on bundled synthetic data
(`keras_mm.data.make_split_label_dataset`) and prints held-out accuracies.
"""

import argparse
import sys
import time

import keras

from keras_mm.data import make_split_label_dataset
from keras_mm.layers import AttentionFusion, ConcatFusion, GatedFusion

FUSIONS = ("concat", "attention", "gated")


def build_classifier(fusion, vision_dim, text_dim, num_classes=4, width=32):
    """A classifier over one modality (`"vision"`, `"text"`) or a fusion of both."""
    vision = keras.Input((vision_dim,), name="vision")
    text = keras.Input((text_dim,), name="text")
    z_v = keras.layers.Dense(width, activation="relu", name="vision_proj")(vision)
    z_t = keras.layers.Dense(width, activation="relu", name="text_proj")(text)
    if fusion == "vision":
        h = z_v
    elif fusion == "text":
        h = z_t
    elif fusion == "concat":
        h = ConcatFusion(width, width, name="fusion")([z_v, z_t])
    elif fusion == "attention":
        h = AttentionFusion(width, name="fusion")([z_v, z_t])
    elif fusion == "gated":
        h = GatedFusion(name="fusion")([z_v, z_t])
    else:
        raise ValueError(
            f"`fusion` must be one of vision, text, {', '.join(FUSIONS)}. "
            f"Received: fusion={fusion!r}"
        )
    h = keras.layers.Dense(width, activation="relu")(h)
    logits = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model({"vision": vision, "text": text}, logits, name=f"{fusion}_clf")


def train_and_score(fusion, train, test, epochs=15, seed=0):
    """Train one classifier; return its held-out accuracy."""
    keras.utils.set_random_seed(seed)
    (x_train, y_train), (x_test, y_test) = train, test
    model = build_classifier(
        fusion, x_train["vision"].shape[1], x_train["text"].shape[1]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0)
    return float(
        model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    )


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m keras_mm.demo")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.samples < 100:
        parser.error("--epochs must be >= 1 and --samples >= 100")
    start = time.time()
    train = make_split_label_dataset(args.samples, seed=0)
    test = make_split_label_dataset(1000, seed=1)
    print(f"keras_mm fusion demo on backend {keras.backend.backend()!r}")
    print(f"{'model':<12}{'held-out accuracy':>20}")
    scores = {}
    for fusion in ("vision", "text") + FUSIONS:
        scores[fusion] = train_and_score(fusion, train, test, epochs=args.epochs)
        print(f"{fusion:<12}{scores[fusion]:>20.3f}")
    best_single = max(scores["vision"], scores["text"])
    worst_fused = min(scores[f] for f in FUSIONS)
    print(f"every fusion beats the best single modality: {worst_fused > best_single}")
    print(f"done in {time.time() - start:.1f} s")
    return 0 if worst_fused > best_single else 1


if __name__ == "__main__":
    sys.exit(main())
