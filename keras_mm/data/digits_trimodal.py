"""scikit-learn's bundled digits with captions and a synthesized audio clip."""

import numpy as np

from keras_mm.api_export import keras_mm_export
from keras_mm.data.class_prompts import make_class_prompts, prompt_words
from keras_mm.data.encode_texts import encode_texts
from keras_mm.data.vocabulary import build_vocabulary

DIGIT_NAMES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
)  # fmt: skip
CAPTION_TEMPLATES = (
    "the digit {}",
    "a handwritten {}",
    "a picture of the number {}",
    "the number {} written by hand",
    "a small image of a handwritten digit {}",
)
PROMPT_TEMPLATES = ("the digit {}", "a photo of the number {}", "a handwritten {}")


def digit_audio(labels, rng, num_samples, sample_rate, noise):
    """A noisy chirp per sample: class-specific start frequency and sweep.

    Digit `d` sweeps from `f_d = 300 + 150 d` Hz at `(d - 4.5) * 60` Hz/s, with a
    half-amplitude second harmonic, a random phase, a +/-3% frequency jitter, a
    random gain in [0.6, 1.0], a raised-cosine fade in/out and Gaussian noise.
    """
    n = len(labels)
    f32 = "float32"
    t = (np.arange(num_samples) / sample_rate).astype(f32)
    f0 = ((300.0 + 150.0 * labels) * rng.uniform(0.97, 1.03, size=n)).astype(f32)
    sweep = ((labels - 4.5) * 60.0).astype(f32)
    phase = rng.uniform(0.0, 2 * np.pi, size=n).astype(f32)
    gain = rng.uniform(0.6, 1.0, size=n).astype(f32)
    # Phase in cycles, wrapped to [0, 1) so float32 keeps full precision.
    cycles = f0[:, None] * t + 0.5 * sweep[:, None] * (t * t)
    arg = np.float32(2 * np.pi) * (cycles - np.floor(cycles)) + phase[:, None]
    wave = np.sin(arg) + np.float32(0.5) * np.sin(2 * arg)
    fade = min(num_samples // 10, int(0.02 * sample_rate)) or 1
    envelope = np.ones(num_samples, dtype=f32)
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade))).astype(f32)
    envelope[:fade], envelope[-fade:] = ramp, ramp[::-1]
    wave *= (gain / np.float32(1.5))[:, None] * envelope
    wave += np.float32(noise) * rng.standard_normal(wave.shape, dtype=f32)
    return wave


@keras_mm_export("keras_mm.data.load_digits_trimodal")
def load_digits_trimodal(
    image_size=32,
    sequence_length=10,
    audio_length=4000,
    sample_rate=8000,
    audio_noise=0.3,
    test_fraction=0.2,
    seed=0,
):
    """Load a tri-modal digits dataset: image, caption and audio per sample.

    The images are scikit-learn's 1,797 bundled 8x8 handwritten digits
    (`sklearn.datasets.load_digits`, shipped with scikit-learn, no download),
    scaled to [0, 1], enlarged by nearest-neighbour to `image_size` and repeated
    over 3 channels. Each sample gets a caption from one of several templates
    ("the digit seven", "a handwritten seven", ...) and a deterministic synthesized
    waveform: a noisy chirp whose start frequency (300 + 150 d Hz) and sweep rate
    depend on the digit `d`. Captions, audio and the split depend only on `seed`.

    Args:
        image_size: int. Images are `(image_size, image_size, 3)`; >= 8.
        sequence_length: int. Token ids per caption (padded with 0).
        audio_length: int. Samples per waveform (4,000 = 0.5 s at 8 kHz).
        sample_rate: int. Hz; used to place the tones.
        audio_noise: float. Standard deviation of the additive audio noise
            (the clean waveform has a peak near 1).
        test_fraction: float in (0, 1). Share of samples in `"test"`.
        seed: int.

    Returns:
        A dict:
        - `"train"`, `"test"`: each a dict with `"inputs"` (`{"images": (N, S, S, 3)
          float32 in [0, 1], "token_ids": (N, T) int32, "padding_mask": (N, T)
          bool, "audio": (N, audio_length) float32}`), `"labels"` (`(N,)` int32
          digit) and `"captions"` (list of N str).
        - `"class_names"`: `["zero", ..., "nine"]`.
        - `"vocabulary"`, `"sequence_length"`, `"sample_rate"`,
          `"prompt_templates"`, `"class_prompts"` (token ids `(10, P, T)`), as in
          `load_shapes`.
    """
    for arg, value, least in (
        ("image_size", image_size, 8),
        ("sequence_length", sequence_length, 1),
        ("audio_length", audio_length, 16),
        ("sample_rate", sample_rate, 1000),
    ):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"`{arg}` must be an integer. Received: {arg}={value!r}")
        if value < least:
            raise ValueError(f"`{arg}` must be >= {least}. Received: {arg}={value!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(
            f"`test_fraction` must be in (0, 1). Received: {test_fraction!r}"
        )
    if not audio_noise >= 0:
        raise ValueError(f"`audio_noise` must be >= 0. Received: {audio_noise!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover
        raise ImportError(
            "`load_digits_trimodal` needs scikit-learn: pip install scikit-learn"
        ) from e

    digits = load_digits()
    small = digits.images.astype("float32") / 16.0  # (1797, 8, 8)
    labels = digits.target.astype("int32")
    pick = np.arange(image_size) * 8 // image_size
    images = small[:, pick][:, :, pick]
    images = np.repeat(images[..., None], 3, axis=-1)

    rng = np.random.default_rng(seed)
    n = len(labels)
    order = rng.permutation(n)
    num_test = max(1, int(round(test_fraction * n)))
    template = rng.integers(0, len(CAPTION_TEMPLATES), n)
    captions = [
        CAPTION_TEMPLATES[t].format(DIGIT_NAMES[y]) for y, t in zip(labels, template)
    ]
    audio = digit_audio(labels, rng, audio_length, sample_rate, audio_noise)

    texts = [t.format(d) for t in CAPTION_TEMPLATES for d in DIGIT_NAMES]
    texts += prompt_words(DIGIT_NAMES, PROMPT_TEMPLATES)
    vocabulary = build_vocabulary(texts)
    enc = encode_texts(captions, vocabulary, sequence_length)

    out = {}
    for split, idx in (("train", order[num_test:]), ("test", order[:num_test])):
        idx = np.sort(idx)
        out[split] = {
            "inputs": {
                "images": images[idx],
                "token_ids": enc["token_ids"][idx],
                "padding_mask": enc["padding_mask"][idx],
                "audio": audio[idx],
            },
            "labels": labels[idx],
            "captions": [captions[i] for i in idx],
        }
    out["class_names"] = list(DIGIT_NAMES)
    out["vocabulary"] = vocabulary
    out["sequence_length"] = int(sequence_length)
    out["sample_rate"] = int(sample_rate)
    out["prompt_templates"] = PROMPT_TEMPLATES
    out["class_prompts"] = make_class_prompts(
        list(DIGIT_NAMES), vocabulary, sequence_length, PROMPT_TEMPLATES
    )
    return out
