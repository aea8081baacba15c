"""Tiny encoders and saving helpers for the VQA / video QA / distiller tests.

The learning claims of these models are asserted by notebooks/11_vqa.ipynb and
notebooks/12_distillation.ipynb (executed by tests/notebooks_test.py).
"""

import json
import os
import tempfile

import keras


def tiny_image_encoder(image_size=16, width=16, name="tiny_image_encoder"):
    """A patchify-only image encoder (cheap to compile) with tokens and a pool."""
    images = keras.Input((image_size, image_size, 3), name="images")
    x = keras.layers.Conv2D(width, 8, strides=8, activation="relu")(images)
    tokens = keras.layers.Reshape(((image_size // 8) ** 2, width))(x)
    pooled = keras.layers.GlobalAveragePooling1D()(tokens)
    return keras.Model(
        images, {"pooled_output": pooled, "sequence_output": tokens}, name=name
    )


def tiny_text_encoder(vocabulary_size=20, width=16, name="tiny_text_encoder"):
    """Token embeddings (dict inputs like `TextEncoder`), cheap to compile."""
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input((None,), dtype="bool", name="padding_mask")
    tokens = keras.layers.Embedding(vocabulary_size, width)(token_ids)
    pooled = keras.layers.GlobalAveragePooling1D()(tokens)
    return keras.Model(
        {"token_ids": token_ids, "padding_mask": padding_mask},
        {"pooled_output": pooled, "sequence_output": tokens},
        name=name,
    )


def cnn_frame_encoder(frame_size, width=32, name="cnn_frame_encoder"):
    """Frames -> (b, width); flattening keeps where the shape is in the frame."""
    frames = keras.Input((frame_size, frame_size, 3), name="frames")
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(frames)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Dense(width)(keras.layers.Flatten()(x))
    return keras.Model(frames, x, name=name)


def eager_round_trip(test, model, inputs):
    """Save `model` as `.keras`, reload it, compare eager outputs (no compile)."""
    expected = keras.tree.map_structure(keras.ops.convert_to_numpy, model(inputs))
    path = os.path.join(tempfile.mkdtemp(), f"{model.name}.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    actual = keras.tree.map_structure(keras.ops.convert_to_numpy, restored(inputs))
    test.assertAllClose(actual, expected, atol=1e-5, rtol=1e-5)
    return restored


def json_config(model):
    """`get_config()` as it is stored in a `.keras` file (tuples become lists)."""
    return json.loads(json.dumps(model.get_config()))
