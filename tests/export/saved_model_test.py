"""`keras_mm.export.export_saved_model`, checked without Keras, on every backend.

The SavedModel is loaded in a subprocess where Keras cannot be imported
(`serve_without_keras.py`) and run with `saved_model_cli run`; both must give
the Keras model's outputs within 1e-5. TensorFlow and JAX export in this
process; only torch exports in a TensorFlow subprocess.
"""

import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_mm.encoders import ImageEncoder, TextEncoder
from keras_mm.export import export_saved_model, saved_model, serving_endpoints
from keras_mm.models import CLIP
from tests.export.saved_model_checks import saved_model_cli_run, serve_without_keras

IMAGE_SHAPE = (16, 16, 3)
VOCABULARY_SIZE = 20
SEQUENCE_LENGTH = 6
ATOL = 1e-5


def tiny_clip():
    keras.utils.set_random_seed(7)
    image_encoder = ImageEncoder(
        image_shape=IMAGE_SHAPE,
        patch_size=8,
        hidden_dim=8,
        num_layers=1,
        num_heads=2,
        intermediate_dim=16,
    )
    text_encoder = TextEncoder(
        vocabulary_size=VOCABULARY_SIZE,
        max_sequence_length=SEQUENCE_LENGTH,
        hidden_dim=8,
        num_layers=1,
        num_heads=2,
        intermediate_dim=16,
    )
    return CLIP(image_encoder, text_encoder, embed_dim=8)


def make_inputs(batch, seed):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (batch,) + IMAGE_SHAPE).astype("float32")
    token_ids = rng.integers(2, VOCABULARY_SIZE, (batch, SEQUENCE_LENGTH))
    lengths = rng.integers(1, SEQUENCE_LENGTH + 1, batch)
    padding_mask = np.arange(SEQUENCE_LENGTH)[None, :] < lengths[:, None]
    token_ids = np.where(padding_mask, token_ids, 0).astype("int32")
    return {"images": images, "token_ids": token_ids, "padding_mask": padding_mask}


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny CLIP and its SavedModel, exported once for the module.

    Also returns the backends of the export subprocesses that were started.
    """
    model = tiny_clip()
    path = str(tmp_path_factory.mktemp("export") / "saved_model")
    subprocess_backends = []
    in_subprocess = saved_model._export_in_subprocess

    def spy(keras_file, filepath, backend, *args):
        subprocess_backends.append(backend)
        return in_subprocess(keras_file, filepath, backend, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(saved_model, "_export_in_subprocess", spy)
        endpoints = export_saved_model(model, path, sequence_length=SEQUENCE_LENGTH)
    return model, path, endpoints, subprocess_backends


def test_exports_in_process_except_on_torch(exported):
    # JAX traces the whole CLIP, text encoder input checks included, with a
    # symbolic batch size (jax2tf); the other tests compare its outputs at 1e-5.
    *_, subprocess_backends = exported
    if keras.backend.backend() == "torch":
        assert subprocess_backends == ["tensorflow"]
    else:
        assert subprocess_backends == []


def test_writes_three_endpoints(exported):
    _, path, endpoints, _ = exported
    assert endpoints == ["serve", "encode_image", "encode_text"]
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    assert os.path.isdir(os.path.join(path, "variables"))


def test_endpoints_match_keras_without_keras(exported, tmp_path):
    model, path, _, _ = exported
    x = make_inputs(5, seed=1)
    text = {k: x[k] for k in ("token_ids", "padding_mask")}
    served = serve_without_keras(
        path,
        {"serve": x, "encode_image": {"images": x["images"]}, "encode_text": text},
        str(tmp_path),
    )
    expected = {k: numpy(v) for k, v in model(x).items()}
    assert set(served["serve"]) == {"image_embeddings", "text_embeddings"}
    for key, value in expected.items():
        np.testing.assert_allclose(served["serve"][key], value, atol=ATOL)
    np.testing.assert_allclose(
        served["encode_image"]["image_embeddings"],
        model.encode_image(x["images"]),
        atol=ATOL,
    )
    np.testing.assert_allclose(
        served["encode_text"]["text_embeddings"],
        model.encode_text(text),
        atol=ATOL,
    )
    # The towers are the halves of the full model.
    np.testing.assert_allclose(
        served["encode_image"]["image_embeddings"],
        expected["image_embeddings"],
        atol=ATOL,
    )


def test_saved_model_cli_run(exported, tmp_path):
    model, path, _, _ = exported
    x = make_inputs(3, seed=2)
    outputs = saved_model_cli_run(
        path,
        "serve",
        input_exprs={"token_ids": x["token_ids"], "padding_mask": x["padding_mask"]},
        input_files={"images": x["images"]},
        tmp_dir=str(tmp_path),
    )
    expected = {k: numpy(v) for k, v in model(x).items()}
    assert set(outputs) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(outputs[key], value, atol=ATOL)


def test_serving_endpoints_signatures():
    model = tiny_clip()
    endpoints = serving_endpoints(model, sequence_length=SEQUENCE_LENGTH)
    assert list(endpoints) == ["serve", "encode_image", "encode_text"]
    names = {
        name: [(s.name, tuple(s.shape), s.dtype) for s in specs]
        for name, (_, specs) in endpoints.items()
    }
    assert names["encode_image"] == [("images", (None,) + IMAGE_SHAPE, "float32")]
    assert names["encode_text"] == [
        ("token_ids", (None, SEQUENCE_LENGTH), "int32"),
        ("padding_mask", (None, SEQUENCE_LENGTH), "bool"),
    ]
    assert [n for n, _, _ in names["serve"]] == ["images", "token_ids", "padding_mask"]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        export_saved_model(str(tmp_path / "missing.keras"), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="Keras model"):
        export_saved_model(object(), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="sequence_length"):
        export_saved_model(tiny_clip(), str(tmp_path / "out"), sequence_length=0)
    assert not os.path.exists(tmp_path / "out")
