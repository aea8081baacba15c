"""`mixed_bfloat16` training of every family runs, with float32 losses."""

import keras
import numpy as np
import pytest

from keras_mm.models import VLAP, VLMP, VLP, MultimodalAutoencoder
from tests.models.model_test_utils import (
    audio_encoder,
    image_encoder,
    subset,
    synthetic_task,
    text_encoder,
)

TEXT = ("images", "token_ids", "padding_mask")


def _build(name):
    if name == "vlp":
        return (
            VLP(
                image_encoder(output_mode="sequence"),
                text_encoder(output_mode="sequence"),
                embed_dim=16,
                num_fusion_layers=1,
                num_heads=2,
                seed=0,
            ),
            TEXT,
            None,
        )
    if name == "vlap":
        return (
            VLAP(image_encoder(), text_encoder(), audio_encoder(), embed_dim=16),
            TEXT + ("audio",),
            None,
        )
    if name == "vlmp":
        return (
            VLMP(image_encoder(), text_encoder(), action_dim=2, embed_dim=16),
            TEXT,
            "actions",
        )
    return (
        MultimodalAutoencoder(
            {"images": image_encoder(), "audio": audio_encoder()}, code_dim=8, seed=0
        ),
        ("images", "audio"),
        None,
    )


@pytest.mark.parametrize("name", ["vlp", "vlap", "vlmp", "autoencoder"])
def test_mixed_bfloat16_training_with_float32_losses(name):
    keras.utils.set_random_seed(1337)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model, keys, target = _build(name)
        x, labels = synthetic_task(32)
        x = subset(x, keys)
        y = None
        if target == "actions":
            y = np.stack([labels / 16.0, labels % 2], 1).astype("float32")
        out = model(x)
        compute = [keras.backend.standardize_dtype(v.dtype) for v in out.values()]
        assert "bfloat16" in compute, compute
        terms = model.loss_terms(x, y, out)
        for term, value in terms.items():
            assert keras.backend.standardize_dtype(value.dtype) == "float32", term
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        assert np.all(np.isfinite(history.history["loss"])), history.history
        for w in model.weights:
            assert keras.backend.standardize_dtype(w.dtype) in (
                "float32",
                "int32",
                "uint32",
                "int64",
            )
    finally:
        keras.config.set_dtype_policy("float32")
