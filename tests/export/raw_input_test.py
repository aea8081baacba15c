"""Raw-input SavedModel endpoints: strings and JPEG/PNG bytes, served without Keras.

Two models are exported: a from-scratch CLI model with the CLI's word tokenizer,
and a converted Hugging Face CLIP with its byte-pair tokenizer. One TensorFlow-only
process (Keras blocked) serves both; its embeddings must equal the Keras model's
on the same texts (tokenized in Python) and on the images the training stream
(`ImageTextDataset`) makes of the same files.
"""

import os

import keras
import numpy as np
import pytest
from PIL import Image

from keras_mm.cli.families import build_clip
from keras_mm.data import ImageTextDataset, make_tokenizer
from keras_mm.export import export_saved_model
from keras_mm.export.text_inputs import TextInputs
from keras_mm.pretrained import clip_from_huggingface
from tests.export.saved_model_checks import (
    saved_model_cli_run,
    serve_many_without_keras,
)

# (The tiny byte-pair vocabulary has letters only: no punctuation here.)
TEXTS = np.array(["a photo of a red circle", "Blue  SQUARE", "astronaut"], object)
MEAN, STD = (0.3, 0.4, 0.5), (0.2, 0.25, 0.3)
VOCABULARY = ["[PAD]", "[UNK]", "a", "photo", "of", "red", "circle", "blue", "square"]


def _photographs(directory):
    """scikit-image photographs as PNG and JPEG files of several sizes."""
    import skimage.data

    files = []
    for name, size, ext in (
        ("astronaut", None, "jpg"),  # 512 px: JPEG decoded at 1/8 (DCT scaling)
        ("coffee", (64, 48), "jpg"),  # 1/2
        ("chelsea", (37, 29), "png"),
        ("rocket", (50, 90), "png"),
    ):
        image = Image.fromarray(getattr(skimage.data, name)())
        if size:
            image = image.resize(size)
        path = os.path.join(directory, f"{name}.{ext}")
        image.save(path, quality=90) if ext == "jpg" else image.save(path)
        files.append(path)
    return files


def _stream_images(files, size):
    """What training sees: the streamed, decoded and normalised images."""
    csv = os.path.join(os.path.dirname(files[0]), "photos.csv")
    with open(csv, "w") as f:
        f.write("filepath,title\n")
        f.writelines(f"{os.path.basename(p)},photo\n" for p in files)
    stream = ImageTextDataset(
        csv, batch_size=len(files), image_size=size, normalization=(MEAN, STD),
        vocabulary=VOCABULARY, shuffle=False, drop_remainder=False,
        with_group_ids=False,
    )  # fmt: skip
    return np.asarray(next(iter(stream.dataset))["images"])


@pytest.fixture(scope="module")
def served(hf_checkpoints, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("raw"))
    files = _photographs(tmp)
    data = [open(p, "rb").read() for p in files]
    models = {}
    keras.utils.set_random_seed(0)
    models["words"] = (
        build_clip(
            {"width": 8, "image_encoder": "conv", "embed_dim": 8, "loss": "clip"},
            (16, 16, 3), len(VOCABULARY), 6,
        ),
        make_tokenizer(VOCABULARY, 6),
    )  # fmt: skip
    model, preprocessor = clip_from_huggingface(os.path.join(hf_checkpoints, "clip"))
    preprocessor.image_converter = None
    models["bpe"] = (model, preprocessor)
    jobs, paths = [], {}
    for name, (model, text) in models.items():
        paths[name] = os.path.join(tmp, name)
        names = export_saved_model(
            model, paths[name], text_preprocessor=text, image_normalization=(MEAN, STD)
        )
        assert names[-2:] == ["encode_text_strings", "encode_image_bytes"]
        jobs.append(
            (
                paths[name],
                {
                    "encode_image_bytes@bad": {
                        "image_bytes": np.array([data[0], b"GIF89a not one"], object)
                    },
                    "encode_text_strings@bad": {
                        "texts": np.array(["a photo", "  "], object)
                    },
                    "encode_text_strings": {"texts": TEXTS},
                    "encode_image_bytes": {"image_bytes": np.array(data, object)},
                },
            )
        )
    outputs = dict(zip(models, serve_many_without_keras(jobs, tmp)))
    return {
        "models": models,
        "outputs": outputs,
        "images": _stream_images(files, 16),
        "paths": paths,
        "tmp": tmp,
        "files": files,
    }


@pytest.mark.parametrize("name", ["words", "bpe"])
def test_raw_endpoints_match_the_keras_model(served, name):
    model, text = served["models"][name]
    out = served["outputs"][name]
    tokens = TextInputs(text)(list(TEXTS))
    tokens = {k: keras.ops.convert_to_numpy(v) for k, v in tokens.items()}
    np.testing.assert_allclose(
        out["encode_text_strings"]["text_embeddings"],
        model.encode_text(tokens),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        out["encode_image_bytes"]["image_embeddings"],
        model.encode_image(served["images"]),
        atol=1e-5,
    )


def test_run_inputs_read_image_files_as_the_training_stream(served):
    from keras_mm.cli.run_inputs import RunInputs

    inputs = RunInputs(None, 16, MEAN, STD)
    np.testing.assert_allclose(
        inputs.load_images(served["files"]), served["images"], atol=1e-6
    )


@pytest.mark.parametrize("name", ["words", "bpe"])
def test_bad_inputs_give_a_readable_error_and_serving_goes_on(served, name):
    out = served["outputs"][name]
    image_error = str(out["encode_image_bytes@bad"]["error"])
    assert "encode_image_bytes" in image_error and "JPEG or PNG" in image_error
    text_error = str(out["encode_text_strings@bad"]["error"])
    assert "encode_text_strings" in text_error and "non-empty" in text_error
    assert "encode_text_strings" in out  # the calls after the errors were served


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="one backend suffices: the SavedModel is read by TensorFlow alone",
)
def test_saved_model_cli_runs_on_strings(served):
    result = saved_model_cli_run(
        served["paths"]["bpe"], "encode_text_strings", {"texts": TEXTS[:2]}, None,
        served["tmp"], text_ops=True,
    )  # fmt: skip
    np.testing.assert_allclose(
        result["text_embeddings"],
        served["outputs"]["bpe"]["encode_text_strings"]["text_embeddings"][:2],
        atol=1e-6,
    )
