"""`keras-mm train --init`: fine-tuning converted checkpoints from the CLI.

Tiny random checkpoints are made here (nothing is downloaded): the Hugging Face
CLIP and SigLIP directories of the shared `hf_checkpoints` fixture (with image
settings and, for SigLIP, a SentencePiece model added) and a keras-hub CLIP
preset directory. Each run trains one batch of 16 shapes images per epoch, so the
first epoch's loss is the loss at step 0, before any update.
"""

import io
import json
import os
import shutil
import warnings

import keras
import numpy as np
import pytest

from keras_mm.cli import main
from keras_mm.cli.data import load_dataset
from keras_mm.pretrained import clip_from_huggingface, clip_from_keras_hub
from tests.cli.cli_helpers import checkpoint_state

N = 16  # shapes training images = one batch
TRAIN = [
    "--dataset", "shapes", "--train-samples", str(N), "--test-samples", "8",
    "--batch-size", str(N), "--epochs", "2", "--schedule", "constant",
    "--learning-rate", "0.01", "--verbose", "0",
]  # fmt: skip
# Image settings written into the checkpoints: the run must use these.
MEAN, STD = [0.3, 0.4, 0.5], [0.2, 0.25, 0.3]


def _write_image_settings(directory):
    with open(os.path.join(directory, "preprocessor_config.json"), "w") as f:
        json.dump({"image_mean": MEAN, "image_std": STD, "crop_size": 16}, f)


def _write_spiece(directory):
    """A SentencePiece model of at most 40 pieces (the tiny SigLIP's vocabulary)."""
    import sentencepiece

    texts = [
        f"a {s} {c}" for s in ("red", "blue", "green") for c in ("circle", "square")
    ]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts * 10), model_writer=model, vocab_size=40,
        hard_vocab_limit=False, unk_id=0, eos_id=1, bos_id=-1, pad_id=-1,
    )  # fmt: skip
    with open(os.path.join(directory, "spiece.model"), "wb") as f:
        f.write(model.getvalue())


@pytest.fixture(scope="module")
def checkpoints(hf_checkpoints, tmp_path_factory):
    from tests.pretrained.conftest import tiny_clip_backbone, tiny_clip_preprocessor

    root = tmp_path_factory.mktemp("init")
    paths = {}
    for name in ("clip", "siglip"):
        paths[name] = str(root / f"hf_{name}")
        shutil.copytree(os.path.join(hf_checkpoints, name), paths[name])
        _write_image_settings(paths[name])
    _write_spiece(paths["siglip"])
    paths["keras_hub"] = str(root / "keras_hub")
    tiny_clip_backbone(seed=3).save_to_preset(paths["keras_hub"])
    tiny_clip_preprocessor().save_to_preset(paths["keras_hub"])
    return paths


@pytest.fixture(scope="module")
def runs(checkpoints, tmp_path_factory):
    """Three fine-tuned runs; SigLIP's with the image tower locked."""
    root = tmp_path_factory.mktemp("runs")
    extra = {
        "clip": ["--text-lr-multiplier", "0.5", "--tile-size", "8"],
        "siglip": ["--lock-image"],
        "keras_hub": [],
    }
    out = {}
    for name, path in checkpoints.items():
        out[name] = str(root / name)
        args = ["train", "--init", path, *TRAIN, *extra[name], "--output", out[name]]
        code = main(args)
        assert code == 0, name
    return out


def _converted(kind, path):
    model, preprocessor = (
        clip_from_keras_hub(path)
        if kind == "keras_hub"
        else clip_from_huggingface(path)
    )
    return model, preprocessor


@pytest.mark.parametrize("kind", ["clip", "siglip", "keras_hub"])
def test_first_loss_is_the_converted_models_then_it_trains(kind, checkpoints, runs):
    model, preprocessor = _converted(kind, checkpoints[kind])
    with open(os.path.join(runs[kind], "run.json")) as f:
        config = json.load(f)
    # The oracle batch: the run's shapes images, normalised here with NumPy (the
    # keras-hub preset has no image settings: OpenAI CLIP's), its captions
    # tokenized by the checkpoint's own preprocessor.
    data = load_dataset(config["dataset"])["train"]
    mean, std = (MEAN, STD) if kind != "keras_hub" else (
        [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    )  # fmt: skip
    images = (data["images"] - np.float32(mean)) / np.float32(std)
    preprocessor.image_converter = None  # text only
    tokens = preprocessor({"prompts": data["captions"], "images": None})
    x = {
        "images": images.astype("float32"),
        "token_ids": np.asarray(keras.ops.convert_to_numpy(tokens["token_ids"])),
        "padding_mask": np.asarray(keras.ops.convert_to_numpy(tokens["padding_mask"])),
    }
    # The positives: caption j fits image i when every attribute it names
    # (colour, shape, size; -1 where not named) is image i's.
    image = data["image_attributes"][data["caption_image_index"]][:, None]
    caption = data["caption_attributes"][None]
    positives = np.all((caption < 0) | (caption == image), axis=-1)
    expected = model.evaluate_loss_terms(x, positives.astype("float32"))["loss"]
    history = checkpoint_state(runs[kind])["history"]
    np.testing.assert_allclose(history[0]["loss"], expected, rtol=1e-5, atol=1e-5)
    # ... then it trains: the first update moved the loss (finite).
    assert np.isfinite(history[1]["loss"]), history
    assert abs(history[1]["loss"] - history[0]["loss"]) > 1e-4, history
    assert config["loss"] == model.loss_name
    assert config["inputs"]["image_size"] == 16


def test_lock_image_keeps_the_image_tower(checkpoints, runs):
    before, _ = _converted("siglip", checkpoints["siglip"])
    after = keras.saving.load_model(
        os.path.join(runs["siglip"], "model.keras"), compile=False
    )
    image = zip(before.image_encoder.weights, after.image_encoder.weights)
    for a, b in image:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    moved = [
        np.abs(np.asarray(a) - np.asarray(b)).max()
        for a, b in zip(before.text_encoder.weights, after.text_encoder.weights)
    ]
    assert max(moved) > 1e-4


def test_run_evaluates_exports_and_resumes_offline(runs):
    import tensorflow as tf

    from keras_mm.cli.checkpoints import RunDir
    from keras_mm.cli.run_inputs import run_inputs

    # The CLIP run: a text learning-rate multiplier (two optimizers) and tiles.
    run = runs["clip"]
    assert main(["evaluate", run, "--no-plots"]) == 0
    assert main(["export", run]) == 0
    # The exported strings endpoint tokenizes as the run does (TensorFlow Text's
    # ops are registered in this process by keras-hub).
    served = tf.saved_model.load(os.path.join(run, "saved_model"))
    texts = ["a red circle", "a blue square of squares"]
    got = served.encode_text_strings(tf.constant(texts))["text_embeddings"]
    model = keras.saving.load_model(os.path.join(run, "model.keras"), compile=False)
    inputs = run_inputs(RunDir(run), RunDir(run).config())
    expected = model.encode_text(inputs.tokenize(texts))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
    _classify_and_search_use_the_checkpoints_tokenizer(run, model, inputs)
    with warnings.catch_warnings():
        # Every optimizer variable (both parts' moments) must be restored.
        warnings.filterwarnings("error", message=".*Skipping variable loading.*")
        assert main(["train", "--output", run, "--resume", "--epochs", "3"]) == 0
    assert checkpoint_state(run)["epoch"] == 3


def _classify_and_search_use_the_checkpoints_tokenizer(run, model, inputs):
    """`classify` / `search` on an --init run: its tokenizer and mean / std."""
    from PIL import Image

    folder = os.path.join(run, "photos")
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    files = [os.path.join(folder, f"{i}.png") for i in range(3)]
    for i, path in enumerate(files):
        Image.fromarray(rng.integers(0, 255, (40, 30 + 9 * i, 3), "uint8")).save(path)
    labels = ["red circle", "blue square"]
    out = os.path.join(run, "classified")
    argv = ["classify", run, "--images", folder, "--labels", ",".join(labels)]
    assert main([*argv, "--template", "a {}", "--output", out, "--no-plots"]) == 0
    images = model.encode_image(inputs.load_images(files))
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    texts = model.encode_text(inputs.tokenize([f"a {c}" for c in labels]))
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    with open(os.path.join(out, "predictions.json")) as f:
        predictions = json.load(f)["predictions"]
    for n, p in enumerate(predictions):
        np.testing.assert_allclose(
            p["scores"], np.sort(images[n] @ texts.T)[::-1], atol=1e-4
        )
    index = os.path.join(run, "photos.index")
    assert main(["index", run, "--images", folder, "--output", index]) == 0
    assert main(["search", index, "a red circle", "--top-k", "3", "--no-plots"]) == 0


def test_init_paths_are_recognised(checkpoints, runs):
    from keras_mm.cli.initializing import init_source

    keras_file = os.path.join(runs["clip"], "model.keras")
    assert init_source(keras_file) == ("run", runs["clip"], keras_file)
    assert init_source(runs["clip"])[:2] == ("run", runs["clip"])
    assert init_source(checkpoints["siglip"])[0] == "huggingface"
    assert init_source(checkpoints["keras_hub"])[0] == "keras_hub"
    assert init_source("openai/clip-vit-base-patch32")[0] == "huggingface"
    assert init_source("clip_vit_base_patch16")[0] == "keras_hub"


def test_hub_name_offline_fails_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    code = main(
        ["train", "--init", "hf://openai/clip-vit-base-patch32", *TRAIN,
         "--output", str(tmp_path / "run")]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1, err
    assert "huggingface-cli download openai/clip-vit-base-patch32" in err
    assert not os.path.exists(tmp_path / "run")


def test_siglip_init_streams_a_csv(checkpoints, tmp_path):
    """SigLIP's SentencePiece tokenizer survives the run's seeding in a stream.

    (`tf.random.set_seed` clears TensorFlow's kernel cache and with it the
    tokenizer's resource, tensorflow/text#570: the stream then failed with
    "Resource ... SentencepieceOp ... does not exist".)
    """
    from tests.data import stream_fixtures as fx

    csv = fx.write_csv(str(tmp_path), fx.pick(12, 0))
    out = str(tmp_path / "run")
    argv = ["train", "--init", checkpoints["siglip"], "--dataset", csv, "--epochs", "1"]
    assert main([*argv, "--batch-size", "4", "--verbose", "0", "--output", out]) == 0
    assert np.isfinite(checkpoint_state(out)["history"][0]["loss"])
