"""`keras.Sequential` encoders are accepted by every family that takes encoders.

Issue 19: a Sequential built on a `keras.Input` has `inputs` but raises on
`input` until called, and was refused ("must be a functional model"). Issue 21
item 7 rides along: the contrastive families refuse a batch of one.
"""

import keras
import numpy as np
import pytest

from keras_mm.models import (
    CLIP,
    VLAP,
    VLMP,
    VLP,
    Captioner,
    DialogueModel,
    MultimodalAutoencoder,
    VQAModel,
)

VOCAB, LENGTH, WIDTH = 12, 4, 8


def images():
    return keras.Sequential(
        [
            keras.Input((4, 4, 3)),
            keras.layers.Reshape((4, 12)),  # 4 "patch" tokens
            keras.layers.Dense(WIDTH),
        ]
    )


def tokens():
    return keras.Sequential(
        [keras.Input((LENGTH,), dtype="int32"), keras.layers.Embedding(VOCAB, WIDTH)]
    )


def audio():
    return keras.Sequential([keras.Input((16,)), keras.layers.Dense(WIDTH)])


BUILDERS = {
    "clip": lambda: CLIP(images(), tokens(), embed_dim=WIDTH),
    "vlp": lambda: VLP(
        images(), tokens(), embed_dim=WIDTH, num_fusion_layers=1, num_heads=2
    ),
    "vlap": lambda: VLAP(images(), tokens(), audio(), embed_dim=WIDTH),
    "vlmp": lambda: VLMP(images(), tokens(), embed_dim=WIDTH, hidden_dim=WIDTH),
    "vqa": lambda: VQAModel(images(), tokens(), num_answers=3, num_heads=2),
    "captioner": lambda: Captioner(
        images(),
        vocabulary_size=VOCAB,
        sequence_length=LENGTH,
        hidden_dim=WIDTH,
        num_layers=1,
        num_heads=2,
    ),
    "dialogue": lambda: DialogueModel(
        images(),
        vocabulary_size=VOCAB,
        history_length=LENGTH,
        question_length=LENGTH,
        answer_length=LENGTH,
        hidden_dim=WIDTH,
        num_layers=1,
        num_heads=2,
    ),
    "autoencoder": lambda: MultimodalAutoencoder(
        {"images": images(), "audio": audio()}, code_dim=4, decoder_hidden_dim=8
    ),
}


def _batch(model, n):
    rng = np.random.default_rng(0)
    x = {}
    for key, spec in model._inputs_struct.items():
        shape = (n,) + tuple(2 if d is None else d for d in spec.shape[1:])
        if "int" in str(spec.dtype):
            x[key] = rng.integers(4, VOCAB, size=shape).astype(spec.dtype)
        elif "bool" in str(spec.dtype):
            x[key] = np.ones(shape, "bool")
        else:
            x[key] = rng.uniform(size=shape).astype(spec.dtype)
    return x


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_sequential_encoders_build_and_run(family):
    model = BUILDERS[family]()
    x = _batch(model, 2)
    out = model(x)
    for value in keras.tree.flatten(out):
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(value))), family
    if family == "clip":  # the reported case: one fit step, then `predict`
        model.compile(optimizer="sgd")
        history = model.fit(x, batch_size=2, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
    if model.min_batch_size > 1:
        model.compile(optimizer="sgd")
        with pytest.raises(ValueError, match="at least 2 examples per batch"):
            model.fit({k: v[:1] for k, v in x.items()}, verbose=0)
