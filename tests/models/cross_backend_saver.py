"""Save one compiled `.keras` file per model family (a helper, not a test).

Usage: `python -m tests.models.cross_backend_saver OUTDIR` under the backend of
`KERAS_BACKEND` (from the repository root). For each family it builds the tiny
model the family's tests build, compiles it with `Adam`, sets its optimizer
state (as after 3 steps, with random moments) and writes to `OUTDIR`:

- `<family>.keras`: the compiled model with its optimizer state;
- `<family>_batch.npz`: a training batch (`x/<key>`, `y`);
- `<family>_optimizer.npz`: the optimizer variables (`"<i>"`), in the
  optimizer's order;
- `<family>_outputs.npz`: the model's `predict` outputs on the batch (`"<key>"`,
  or `"y"` for a tensor output), which the loading backend must reproduce;

and `saved.json`: `{"backend", "families": {family: [optimizer variable
names]}}`.
"""

import functools
import json
import os
import sys

import keras
import numpy as np

import keras_mm  # noqa: F401  (registers the classes)
from keras_mm.models import CLIP, VLAP, VLMP, VLP, Distiller, MultimodalAutoencoder
from tests.models import captioner_test, dialogue_test
from tests.models.model_test_utils import (
    audio_encoder,
    image_encoder,
    subset,
    synthetic_task,
    text_encoder,
)
from tests.reliability import safe_loading_test

ITERATIONS = 3
TEXT = ("images", "token_ids", "padding_mask")

if keras.backend.backend() == "torch":
    import torch

    torch.set_num_threads(1)


@functools.cache
def _tiny_models():
    """The five contrastive / fusion families, built once: name -> (model, keys)."""
    return {
        "clip": (CLIP(image_encoder(), text_encoder(), embed_dim=16), TEXT),
        "vlp": (
            VLP(
                image_encoder(output_mode="sequence"),
                text_encoder(output_mode="sequence"),
                embed_dim=16,
                num_fusion_layers=1,
                num_heads=2,
                seed=0,
            ),
            TEXT,
        ),
        "vlap": (
            VLAP(
                image_encoder(),
                text_encoder(),
                audio_encoder(),
                embed_dim=16,
                fusion="gated",
            ),
            TEXT + ("audio",),
        ),
        "vlmp": (
            VLMP(image_encoder(), text_encoder(), action_dim=3, embed_dim=16),
            TEXT,
        ),
        "autoencoder": (
            MultimodalAutoencoder(
                {"images": image_encoder(), "audio": audio_encoder()},
                code_dim=8,
                fusion="attention",
                seed=0,
            ),
            ("images", "audio"),
        ),
    }


def _tiny(name):
    def build():
        model, keys = _tiny_models()[name]
        return model, subset(synthetic_task(4, seed=2)[0], keys), None

    return build


def _captioner():
    return captioner_test.shared_model(), captioner_test.batch(n=3, seed=3), None


def _vqa():
    model, x = safe_loading_test.FAMILIES["vqa"]()
    return model, x, np.arange(4, dtype="int32") % 5


def _dialogue():
    return (dialogue_test.shared_model(),) + dialogue_test.batch(seed=3)


def _distiller():
    return safe_loading_test._distiller() + (None,)


def _clip_distiller():
    # CLIP-type: the teacher holds nested encoders and a logit scale, which a
    # loaded TensorFlow Distiller used to make trainable again.
    teacher = CLIP(image_encoder(name="t_image"), text_encoder(name="t_text"))
    student = CLIP(
        image_encoder(name="s_image"), text_encoder(name="s_text"), embed_dim=8
    )
    x = synthetic_task(4, seed=2)[0]
    return Distiller(teacher, student), subset(x, TEXT), None


# family -> () -> (tiny model, training inputs, labels or None): the tiny
# models above and of `safe_loading_test`, and a CLIP-type
# distiller beside the classifier one. `safe_loading_test`'s
# `distiller_student` is a plain `keras.Model`, whose compile config is
# Keras' own; it is left out.
FAMILIES = {
    **{name: _tiny(name) for name in ("clip", "vlp", "vlmp", "vlap", "autoencoder")},
    "captioner": _captioner,
    "vqa": _vqa,
    "dialogue": _dialogue,
    "distiller": _distiller,
    "distiller_clip": _clip_distiller,
}


def _first(x):
    return next(iter(x.values())) if isinstance(x, dict) else x


def save_all(outdir):
    saved = {"backend": keras.backend.backend(), "families": {}}
    rng = np.random.default_rng(0)
    for family, build in FAMILIES.items():
        keras.utils.set_random_seed(1)
        model, x, y = build()
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        # Optimizer state as after `ITERATIONS` steps, set directly: a train
        # step would cost an XLA / tf.function compile per family.
        model.optimizer.build(model.trainable_variables)
        state = []
        for variable in model.optimizer.variables:
            if variable is model.optimizer.iterations:
                value = np.full(variable.shape, ITERATIONS, variable.dtype)
            elif variable.path.endswith("learning_rate"):
                value = keras.ops.convert_to_numpy(variable)
            else:  # Adam moments (the second must be >= 0)
                value = rng.uniform(0, 1e-3, variable.shape).astype(variable.dtype)
            variable.assign(value)
            state.append(value)
        model.save(os.path.join(outdir, f"{family}.keras"))
        if isinstance(x, dict):
            batch = {f"x/{k}": v for k, v in x.items()}
        else:
            batch = {"x": x}
        if y is not None:
            batch["y"] = y
        np.savez(os.path.join(outdir, f"{family}_batch.npz"), **batch)
        np.savez(
            os.path.join(outdir, f"{family}_optimizer.npz"),
            **{str(i): v for i, v in enumerate(state)},
        )
        outputs = model.predict(
            x, batch_size=len(y if y is not None else _first(x)), verbose=0
        )
        if not isinstance(outputs, dict):
            outputs = {"y": outputs}
        np.savez(os.path.join(outdir, f"{family}_outputs.npz"), **outputs)
        saved["families"][family] = [v.path for v in model.optimizer.variables]
    with open(os.path.join(outdir, "saved.json"), "w") as f:
        json.dump(saved, f)


if __name__ == "__main__":
    save_all(sys.argv[1])
