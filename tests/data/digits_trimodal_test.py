import numpy as np
import pytest

from keras_mm.data import load_digits_trimodal


@pytest.fixture(scope="module")
def data():
    return load_digits_trimodal()


def test_structure(data):
    train, test = data["train"], data["test"]
    assert len(train["labels"]) + len(test["labels"]) == 1797
    assert len(test["labels"]) == round(0.2 * 1797)
    for split in (train, test):
        inputs = split["inputs"]
        n = len(split["labels"])
        assert sorted(inputs) == ["audio", "images", "padding_mask", "token_ids"]
        assert inputs["images"].shape == (n, 32, 32, 3)
        assert inputs["images"].dtype == np.float32
        assert 0 <= inputs["images"].min() and inputs["images"].max() <= 1
        assert inputs["audio"].shape == (n, 4000)
        assert inputs["audio"].dtype == np.float32
        assert inputs["token_ids"].shape == (n, 10)
        assert inputs["token_ids"].dtype == np.int32
        np.testing.assert_array_equal(inputs["padding_mask"], inputs["token_ids"] != 0)
    assert data["class_names"][7] == "seven"
    assert data["class_prompts"]["token_ids"].shape[:2] == (10, 3)
    assert data["sample_rate"] == 8000


def test_images_are_the_sklearn_digits(data):
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Nearest-neighbour enlargement by 4: every 4x4 block repeats one pixel.
    small = data["test"]["inputs"]["images"][:, ::4, ::4, 0]
    reference = {img.astype("float32").tobytes() for img in digits.images / 16.0}
    assert all(img.tobytes() in reference for img in small)
    np.testing.assert_array_equal(
        data["test"]["inputs"]["images"][..., 0],
        data["test"]["inputs"]["images"][..., 2],
    )


def test_captions_match_labels_and_have_no_unknown_words(data):
    for split in ("train", "test"):
        for caption, label, ids in zip(
            data[split]["captions"],
            data[split]["labels"],
            data[split]["inputs"]["token_ids"],
        ):
            assert data["class_names"][label] in caption.split()
            assert 1 not in ids.tolist()


def test_audio_carries_the_digit(data):
    # Digit d sweeps from 300 + 150 d Hz at (d - 4.5) * 60 Hz/s for 0.5 s: the
    # dominant frequency, matched to the nearest mean frequency, gives the digit.
    audio, labels = data["train"]["inputs"]["audio"], data["train"]["labels"]
    spectrum = np.abs(np.fft.rfft(audio, axis=1))
    peak_hz = spectrum.argmax(axis=1) * data["sample_rate"] / audio.shape[1]
    digits = np.arange(10)
    mean_hz = 300 + 150 * digits + 15 * (digits - 4.5)
    nearest = np.argmin(np.abs(peak_hz[:, None] - mean_hz[None]), axis=1)
    assert np.mean(nearest == labels) > 0.95
    # Two samples of one digit differ (noise, phase, jitter).
    same = np.flatnonzero(labels == 3)[:2]
    assert not np.allclose(audio[same[0]], audio[same[1]])


def test_deterministic_and_seeded(data):
    again = load_digits_trimodal()
    other = load_digits_trimodal(seed=1)
    for key, value in data["test"]["inputs"].items():
        np.testing.assert_array_equal(value, again["test"]["inputs"][key])
    assert not np.array_equal(data["test"]["labels"], other["test"]["labels"])


def test_options_and_errors():
    data = load_digits_trimodal(image_size=12, audio_length=800, test_fraction=0.5)
    assert data["train"]["inputs"]["images"].shape[1:] == (12, 12, 3)
    assert data["train"]["inputs"]["audio"].shape[1] == 800
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits_trimodal(test_fraction=1.0)
    with pytest.raises(ValueError, match="image_size"):
        load_digits_trimodal(image_size=4)
    with pytest.raises(ValueError, match="audio_noise"):
        load_digits_trimodal(audio_noise=-1)
