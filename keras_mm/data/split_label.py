"""A two-modality synthetic task in which each modality carries half the label."""

import numpy as np

from keras_mm.api_export import keras_mm_export


@keras_mm_export("keras_mm.data.make_split_label_dataset")
def make_split_label_dataset(
    num_samples=2000, vision_dim=16, text_dim=12, noise=0.3, seed=0
):
    """Make a 4-class task that needs both modalities.

    The label is `y = 2 * a + b` with two independent bits: `a` is written into the
    "vision" features and `b` into the "text" features, each as a class-dependent
    mean plus Gaussian noise. A classifier that sees one modality can reach at most
    50% accuracy; one that fuses both can reach ~100% (seed section 1.2.2, the
    complementary role of modalities).

    Args:
        num_samples: int. Number of samples.
        vision_dim: int. Feature size of the vision modality.
        text_dim: int. Feature size of the text modality.
        noise: float. Standard deviation of the Gaussian noise.
        seed: int. Seed of the NumPy generator; the data are deterministic.

    Returns:
        `(inputs, labels)`: `inputs` is a dict `{"vision": (N, vision_dim),
        "text": (N, text_dim)}` of float32 arrays, `labels` is `(N,)` int32 in
        `[0, 4)`.
    """
    for arg, value in (
        ("num_samples", num_samples),
        ("vision_dim", vision_dim),
        ("text_dim", text_dim),
    ):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{arg}` must be a positive integer. Received: {value!r}")
    if not noise >= 0:
        raise ValueError(f"`noise` must be >= 0. Received: noise={noise!r}")
    rng = np.random.default_rng(seed)
    # Fixed class prototypes (+/-1 patterns), drawn from a separate stream so the
    # task itself does not depend on `num_samples`.
    protos = np.random.default_rng(12345)
    vision_protos = protos.choice([-1.0, 1.0], size=(2, vision_dim))
    text_protos = protos.choice([-1.0, 1.0], size=(2, text_dim))
    a = rng.integers(0, 2, size=num_samples)
    b = rng.integers(0, 2, size=num_samples)
    vision = vision_protos[a] + noise * rng.normal(size=(num_samples, vision_dim))
    text = text_protos[b] + noise * rng.normal(size=(num_samples, text_dim))
    inputs = {"vision": vision.astype("float32"), "text": text.astype("float32")}
    return inputs, (2 * a + b).astype("int32")
