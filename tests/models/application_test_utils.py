"""Small encoders and answer-prior baselines for the VQA / video QA / distiller tests.

The learning tests use tiny convolutional encoders: on 2 shared CPU cores they
reach a clear margin over the answer priors in a few seconds of training, where
a from-scratch ViT needs several times more steps. The `ImageEncoder` path is
covered by the shape, saving and error tests.
"""

import collections
import json
import os
import tempfile

import keras
import numpy as np


def cnn_image_encoder(image_size, width=32, name="cnn_image_encoder"):
    """Images -> {"pooled_output": (b, width), "sequence_output": (b, n, width)}."""
    images = keras.Input((image_size, image_size, 3), name="images")
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(images)
    x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(x)
    cells = (image_size // 4) ** 2
    tokens = keras.layers.Reshape((cells, width))(x)
    pooled = keras.layers.GlobalAveragePooling1D()(tokens)
    return keras.Model(
        images, {"pooled_output": pooled, "sequence_output": tokens}, name=name
    )


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


def answer_prior_accuracy(split):
    """Best accuracy of a predictor that sees only the question, never the image.

    The most frequent answer per question type and per exact question text, both
    counted on the evaluated split itself (an optimistic, oracle prior); the
    larger of the two is returned with the per-type version.
    """
    answers = np.asarray(split["answers"])
    results = {}
    for key, groups in (
        ("type", np.asarray(split["question_types"])),
        ("question", np.asarray(split["questions"])),
    ):
        correct = 0
        for g in np.unique(groups):
            counts = collections.Counter(answers[groups == g].tolist())
            correct += counts.most_common(1)[0][1]
        results[key] = correct / len(answers)
    return max(results.values()), results


def per_type_accuracy(predictions, split, question_types):
    predictions = np.asarray(predictions)
    truth = np.asarray(split["answer_texts"])
    kinds = np.asarray(split["question_types"])
    return {
        name: float(np.mean(predictions[kinds == i] == truth[kinds == i]))
        for i, name in enumerate(question_types)
        if np.any(kinds == i)
    }


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


def eager_answers(model, inputs):
    """Answer strings from one eager call (no `predict` compile, faster on JAX)."""
    logits = keras.ops.convert_to_numpy(model(inputs)["logits"])
    return [model.answer_vocabulary[i] for i in logits.argmax(-1)]
