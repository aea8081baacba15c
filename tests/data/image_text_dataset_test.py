"""ImageTextDataset: every format streams real photographs into `fit`."""

import csv
import os

import keras
import numpy as np
import pytest
from PIL import Image

from keras_mm.data import ImageTextDataset
from keras_mm.data._stream_images import load_image
from keras_mm.models import CLIP
from tests.data import stream_fixtures as fx
from tests.models.model_test_utils import IMAGE_SHAPE, image_encoder, text_encoder

SIZE, LENGTH, BATCH = IMAGE_SHAPE[0], 6, 4
FORMATS = tuple(fx.WRITERS)


@pytest.fixture(scope="module")
def model():
    """One tiny CLIP shared by every fit (its train function is built once)."""
    keras.utils.set_random_seed(0)
    clip = CLIP(image_encoder(), text_encoder(), embed_dim=8)
    clip.compile(optimizer=keras.optimizers.Adam(1e-3))
    return clip


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Every format written once: `{format: (source, photo names)}`."""
    out = {}
    for k, fmt in enumerate(FORMATS):
        names = fx.pick(8, 4 * k)
        root = str(tmp_path_factory.mktemp(fmt))
        out[fmt] = (fx.WRITERS[fmt](root, names), names)
    return out


def stream(source, **kwargs):
    args = dict(batch_size=BATCH, image_size=SIZE)
    if kwargs.get("with_texts", True):
        args.update(vocabulary=fx.VOCABULARY, sequence_length=LENGTH)
    args.update(kwargs)
    return ImageTextDataset(source, **args)


@pytest.mark.parametrize("fmt", FORMATS)
def test_fit_on_each_format_with_real_photographs(fmt, written, model):
    source, names = written[fmt]
    data = stream(source)
    assert data.format == fmt  # detected from the path
    assert len(data) == 2
    callback = data.callback()
    history = model.fit(data.dataset, epochs=2, callbacks=[callback], verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert history.history["bad_records"] == [0, 0]
    assert data.records_read >= 2 * 8  # two whole epochs were read


def test_every_photograph_is_used_and_matches_pillow(written):
    """All 28 readable photographs appear; a batch equals a Pillow oracle."""
    used = {n for _, names in written.values() for n in names}
    assert used >= set(fx.PHOTOS)
    source, names = written["csv"]
    data = stream(source, shuffle=False, with_group_ids=False, with_texts=False)
    batches = list(data)
    assert set(batches[0]) == {"images"}  # an image-only stream: no tokens
    images = np.concatenate([b["images"] for b in batches])
    for name, image in zip(names, images):
        path = os.path.join(os.path.dirname(source), "img", name)
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"), "float32")
        # Oracle: shortest side to SIZE (antialiased), centre crop, [0, 1].
        h, w = rgb.shape[:2]
        scale = SIZE / min(h, w)
        nh, nw = max(SIZE, round(h * scale)), max(SIZE, round(w * scale))
        small = np.asarray(
            Image.fromarray(rgb.astype("uint8")).resize((nw, nh), Image.BICUBIC),
            "float32",
        )
        top, left = (nh - SIZE) // 2, (nw - SIZE) // 2
        expected = small[top : top + SIZE, left : left + SIZE] / 255.0
        assert image.shape == (SIZE, SIZE, 3)
        # tf's and Pillow's antialiased bicubic kernels differ slightly.
        assert np.abs(image - expected).mean() < 0.03, name
        # `keras-mm search --image` preprocesses one file the same way.
        np.testing.assert_allclose(
            load_image(path, SIZE, (0, 0, 0), (1, 1, 1), 10**8), image, atol=1e-6
        )


@pytest.mark.backend_independent  # tf.data alone
@pytest.mark.parametrize("fmt", ("csv", "tar"))
def test_same_seed_same_order_and_epochs_resume(fmt, written):
    source, _ = written[fmt]

    def texts(data, epoch=None, batch=0):
        if epoch is not None:
            data.set_epoch(epoch, batch)
        return [tuple(b[0]["token_ids"][:, 4]) for b in data]

    a = stream(source, seed=3, shuffle_buffer=4)
    epochs = [texts(a) for _ in range(2)]  # each pass serves the next epoch
    assert epochs[0] != epochs[1]  # reshuffled per epoch
    resumed = stream(source, seed=3, shuffle_buffer=4)
    assert texts(resumed, epoch=1) == epochs[1]  # same seed, same order
    assert texts(resumed, epoch=1, batch=1) == epochs[1][1:]  # mid-epoch resume
    assert texts(stream(source, seed=4, shuffle_buffer=4)) != epochs[0]


@pytest.mark.backend_independent  # tf.data alone
def test_a_split_far_larger_than_memory_is_never_materialised(tmp_path):
    """100,000 records at 224 px would be 60 GB of float32; read-ahead stays small."""
    fx.copy_photos(str(tmp_path), ["chessboard_RGB.png"])
    path = tmp_path / "huge.tsv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["filepath", "title"])
        writer.writerows(("chessboard_RGB.png", fx.caption(i)) for i in range(100_000))
    data = ImageTextDataset(
        str(path), batch_size=8, image_size=224, vocabulary=fx.VOCABULARY
    )
    assert len(data) == 12_500
    iterator = iter(data)
    for _ in range(3):
        x, _ = next(iterator)
    assert x["images"].shape == (8, 224, 224, 3)
    # Three batches consumed; at most a few more decoded ahead (prefetch).
    assert data.records_read <= 3 * 8 + 12 * 8, data.records_read
    # Fixed buffers: tf.data's autotuner may not grow them.
    assert data.dataset.options().autotune.enabled is False


def test_tar_reads_shards_lazily(written):
    source, _ = written["tar"]
    data = stream(source, batch_size=1, shuffle_buffer=1)
    next(iter(data))
    assert data.records_read < 8


@pytest.mark.backend_independent  # tf.data alone
def test_normalization_and_augmentation(written):
    source, _ = written["csv"]
    plain = next(iter(stream(source, shuffle=False, with_group_ids=False)))
    clip = next(iter(stream(source, shuffle=False, normalization="clip")))[0]
    mean = np.asarray([0.48145466, 0.4578275, 0.40821073], "float32")
    std = np.asarray([0.26862954, 0.26130258, 0.27577711], "float32")
    np.testing.assert_allclose(
        clip["images"], (plain["images"] - mean) / std, atol=1e-5
    )
    aug = stream(source, shuffle=False, augment=True, crop_scale=(0.3, 0.5))
    first, second = next(iter(aug))[0]["images"], next(iter(aug))[0]["images"]
    assert not np.allclose(first, plain["images"])  # a random crop
    assert not np.allclose(first, second)  # drawn anew each epoch
    aug.set_epoch(0)
    np.testing.assert_array_equal(next(iter(aug))[0]["images"], first)


def test_bad_arguments_name_the_argument(written):
    source, _ = written["csv"]
    for kwargs, name in (
        ({"format": "parquet"}, "format"),
        ({"on_error": "ignore"}, "on_error"),
        ({"normalization": "imagenet"}, "normalization"),
        ({"batch_size": 0}, "batch_size"),
        ({"caption_key": "caption"}, "caption_key"),
        ({"with_texts": False, "vocabulary": ["[PAD]", "a"]}, "with_texts"),
    ):
        with pytest.raises(ValueError, match=name):
            stream(source, **kwargs)
    with pytest.raises(ValueError, match="Cannot tell the format"):
        stream(source + ".parquet")
