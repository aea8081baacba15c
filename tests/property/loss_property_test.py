"""Property-based tests of every public loss: random valid and invalid inputs.

Valid inputs of random sizes, dtypes, label kinds and scales give a finite
float32 scalar that does not depend on the input precision (the losses compute
in float32: a float16/bfloat16 input gives exactly the loss of its float32
upcast), the function and its `Loss` class agree, and the tiled embedding
losses equal the naive ones. Invalid inputs raise a `ValueError` that names the
argument.
"""

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keras import ops

import keras_mm.losses
from keras_mm.losses import (
    CLIPLoss,
    DeepCCALoss,
    DistillationLoss,
    OrthogonalAlignmentLoss,
    SigLIPLoss,
    SoftOrthogonalAlignmentLoss,
    clip_loss,
    clip_loss_from_embeddings,
    deep_cca_loss,
    distillation_loss,
    orthogonal_alignment_loss,
    siglip_loss,
    siglip_loss_from_embeddings,
    soft_orthogonal_alignment_loss,
)
from tests.property.property_utils import assert_names_argument

SETTINGS = settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
DTYPES = st.sampled_from(["float32", "float16", "bfloat16"])
# Every name of keras_mm.losses.__all__, by the test that covers it.
COVERED = {
    "test_contrastive_losses": [
        "CLIPLoss",
        "SigLIPLoss",
        "clip_loss",
        "clip_loss_from_embeddings",
        "siglip_loss",
        "siglip_loss_from_embeddings",
    ],
    "test_alignment_and_distillation_losses": [
        "DeepCCALoss",
        "DistillationLoss",
        "OrthogonalAlignmentLoss",
        "SoftOrthogonalAlignmentLoss",
        "deep_cca_loss",
        "distillation_loss",
        "orthogonal_alignment_loss",
        "soft_orthogonal_alignment_loss",
    ],
}


def test_every_public_loss_is_covered():
    covered = sorted(n for names in COVERED.values() for n in names)
    assert covered == sorted(keras_mm.losses.__all__)


def _evaluate(fn, *args):
    """`fn(*args)`, a dict of losses, as Python floats.

    Every loss must be a finite float32 scalar. On JAX `fn` runs as one compiled
    program: eager JAX compiles each op separately for every new shape, several
    times slower for these random sizes.
    """
    if keras.backend.backend() == "jax":
        import jax

        fn = jax.jit(fn)
    values = {}
    for key, loss in fn(*args).items():
        assert keras.backend.standardize_dtype(loss.dtype) == "float32", key
        assert tuple(loss.shape) == (), key
        values[key] = float(ops.convert_to_numpy(loss))
        assert np.isfinite(values[key]), key
    return values


def _low_and_upcast(array, dtype):
    """`array` in `dtype`, and the float32 upcast of that low-precision tensor."""
    low = ops.cast(array.astype("float32"), dtype)
    return low, ops.cast(low, "float32")


def _close(a, b, tol=1e-5):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def _config_round_trip(loss):
    config = loss.get_config()
    assert type(loss).from_config(config).get_config() == config
    serialized = keras.losses.serialize(loss)
    assert serialized["registered_name"] == f"keras_mm>{type(loss).__name__}"
    revived = keras.losses.deserialize(serialized)
    assert type(revived) is type(loss) and revived.get_config() == config


@SETTINGS
@given(
    b=st.integers(1, 4),
    b_text=st.integers(1, 4),
    d=st.integers(1, 4),
    labels_kind=st.sampled_from(["none", "groups", "pair"]),
    log_scale=st.floats(0.0, 9.0),
    tile_size=st.sampled_from([None, 1, 2, 3]),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
)
def test_contrastive_losses(
    b, b_text, d, labels_kind, log_scale, tile_size, dtype, seed
):
    rng = np.random.default_rng(seed)
    if labels_kind != "pair":
        b_text = b  # None or (B,) group ids need square logits
    x = rng.normal(size=(b, d))
    y = rng.normal(size=(b_text, d))
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
    y /= np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-6)
    scale = float(np.exp(log_scale))  # up to ~8e3: logits of any magnitude
    groups = rng.integers(0, 3, size=max(b, b_text)).astype("int32")
    labels = {
        "none": None,
        "groups": groups[:b],
        "pair": (groups[:b], groups[:b_text]),
    }[labels_kind]
    logits, upcast = _low_and_upcast(scale * x @ y.T, dtype)
    xs, xs32 = _low_and_upcast(x, dtype)
    ys, ys32 = _low_and_upcast(y, dtype)

    def losses(logits, upcast, xs, ys, xs32, ys32):
        naive = scale * ops.matmul(xs32, ops.transpose(ys32))
        return {
            "clip": clip_loss(logits, labels),
            "clip_upcast": clip_loss(upcast, labels),
            "CLIPLoss": CLIPLoss()(labels, logits),
            "siglip": siglip_loss(logits, labels),
            "siglip_upcast": siglip_loss(upcast, labels),
            "SigLIPLoss": SigLIPLoss()(labels, logits),
            "clip_embeddings": clip_loss_from_embeddings(
                xs, ys, scale, labels, tile_size
            ),
            "clip_naive": clip_loss(naive, labels),
            "siglip_embeddings": siglip_loss_from_embeddings(
                xs, ys, scale, -3.0, labels, tile_size
            ),
            "siglip_naive": siglip_loss(naive - 3.0, labels),
        }

    v = _evaluate(losses, logits, upcast, xs, ys, xs32, ys32)
    assert v["clip"] >= 0.0 and v["siglip"] >= 0.0
    # float32 computation: a low-precision input gives its upcast's loss.
    _close(v["clip"], v["clip_upcast"], 1e-6)
    _close(v["siglip"], v["siglip_upcast"], 1e-6)
    # The Loss classes (mean reduction) equal the functions.
    _close(v["CLIPLoss"], v["clip"])
    _close(v["SigLIPLoss"], v["siglip"])
    # From embeddings, tiled or not: the loss of scale * x y^T (+ bias).
    tol = 1e-5 * max(1.0, scale)
    _close(v["clip_embeddings"], v["clip_naive"], tol)
    _close(v["siglip_embeddings"], v["siglip_naive"], tol)
    for loss in (CLIPLoss(), SigLIPLoss()):
        _config_round_trip(loss)


@SETTINGS
@given(
    d_x=st.integers(1, 3),
    d_y=st.integers(1, 3),
    extra=st.integers(1, 4),
    weight=st.floats(0.0, 10.0),
    temperature=st.floats(0.1, 10.0),
    epsilon=st.floats(1e-4, 1.0),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
)
def test_alignment_and_distillation_losses(
    d_x, d_y, extra, weight, temperature, epsilon, dtype, seed
):
    rng = np.random.default_rng(seed)
    b = max(d_x, d_y) + extra  # Deep CCA needs more examples than features
    k = int(rng.integers(1, min(d_x, d_y) + 1))
    zx, zx32 = _low_and_upcast(rng.normal(size=(b, d_x)), dtype)
    zy, zy32 = _low_and_upcast(rng.normal(size=(b, d_y)), dtype)
    other, other32 = _low_and_upcast(rng.normal(size=(b, d_x)), dtype)
    deep_cca = DeepCCALoss(epsilon=epsilon, num_components=k)
    soft_loss = SoftOrthogonalAlignmentLoss(orthogonality_weight=weight)
    kd_loss = DistillationLoss(temperature=temperature)

    def losses(zx, zy, other, zx32, zy32, other32):
        return {
            "cca": deep_cca_loss(zx, zy, epsilon, k),
            "cca_upcast": deep_cca_loss(zx32, zy32, epsilon, k),
            "DeepCCALoss": deep_cca(zx, zy),
            "ortho": orthogonal_alignment_loss(zx, other),
            "ortho_upcast": orthogonal_alignment_loss(zx32, other32),
            "OrthogonalAlignmentLoss": OrthogonalAlignmentLoss()(zx, other),
            "soft": soft_orthogonal_alignment_loss(zx, other, weight),
            "soft_upcast": soft_orthogonal_alignment_loss(zx32, other32, weight),
            "SoftOrthogonalAlignmentLoss": soft_loss(zx, other),
            "kd": distillation_loss(zx, other, temperature),
            "kd_upcast": distillation_loss(zx32, other32, temperature),
            "DistillationLoss": kd_loss(other, zx),  # (teacher, student)
            "kd_self": distillation_loss(zx, zx, temperature),
        }

    v = _evaluate(losses, zx, zy, other, zx32, zy32, other32)
    assert -k - 1e-4 <= v["cca"] <= 1e-4  # minus a sum of k correlations in [0, 1]
    assert v["ortho"] >= 0.0
    assert v["soft"] >= v["ortho"] - 1e-5  # the penalty is >= 0
    assert v["kd"] >= -1e-6 and abs(v["kd_self"]) < 1e-5  # a KL divergence
    for name, cls_name in (
        ("cca", "DeepCCALoss"),
        ("ortho", "OrthogonalAlignmentLoss"),
        ("soft", "SoftOrthogonalAlignmentLoss"),
        ("kd", "DistillationLoss"),
    ):
        # float32 computation, and the Loss class equals the function.
        _close(v[name], v[f"{name}_upcast"], 1e-6)
        _close(v[cls_name], v[name])
    for loss in (deep_cca, OrthogonalAlignmentLoss(), soft_loss, kd_loss):
        _config_round_trip(loss)


def _ones(*shape):
    return np.ones(shape, "float32")


def _eye(n, m=None):
    return np.eye(n, m, dtype="float32")


# (name, function of random sizes (b, d) that must raise ValueError, the
# argument its message must name)
INVALID = [
    ("clip_rank", lambda b, d: clip_loss(_ones(b)), "logits"),
    ("clip_square", lambda b, d: clip_loss(_ones(b, b + 1)), "logits"),
    ("clip_labels", lambda b, d: clip_loss(_eye(b), np.arange(b + 1)), "labels"),
    ("clip_labels_2d", lambda b, d: clip_loss(_eye(b), np.ones((b, b + 1))), "labels"),
    ("clip_triple", lambda b, d: clip_loss(_eye(b), (np.arange(b),) * 3), "labels"),
    (
        "clip_pair",
        lambda b, d: clip_loss(_eye(b, b + 1), (np.arange(b), np.arange(b))),
        "text_labels",
    ),
    ("CLIPLoss_square", lambda b, d: CLIPLoss()(None, _ones(b, b + 1)), "logits"),
    ("CLIPLoss_labels", lambda b, d: CLIPLoss()(np.arange(b + 1), _eye(b)), "labels"),
    ("siglip_rank", lambda b, d: siglip_loss(_ones(b, b, 2)), "logits"),
    ("siglip_labels", lambda b, d: siglip_loss(_eye(b), np.arange(b + 1)), "labels"),
    ("SigLIPLoss_rank", lambda b, d: SigLIPLoss()(None, _ones(b)), "logits"),
    (
        "SigLIPLoss_labels",
        lambda b, d: SigLIPLoss()(np.arange(b + 1), _eye(b)),
        "labels",
    ),
    ("cca_rank", lambda b, d: deep_cca_loss(_ones(b), _ones(b)), "zx"),
    (
        "cca_batch",
        lambda b, d: deep_cca_loss(_ones(d + 3, d), _ones(d + 2, d)),
        "zx",
    ),
    ("cca_small_batch", lambda b, d: deep_cca_loss(_ones(d, d), _ones(d, d)), "zx"),
    (
        "cca_components",
        lambda b, d: deep_cca_loss(_ones(d + 2, d), _ones(d + 2, d), 1e-3, d + 1),
        "num_components",
    ),
    (
        "cca_epsilon",
        lambda b, d: deep_cca_loss(_ones(d + 2, d), _ones(d + 2, d), -1e-3),
        "epsilon",
    ),
    ("DeepCCALoss_epsilon", lambda b, d: DeepCCALoss(epsilon=0.0), "epsilon"),
    ("DeepCCALoss_k", lambda b, d: DeepCCALoss(num_components=0), "num_components"),
    (
        "DeepCCALoss_batch",
        lambda b, d: DeepCCALoss()(_ones(d + 3, d), _ones(d + 2, d)),
        "zx",
    ),
    (
        "distillation_shape",
        lambda b, d: distillation_loss(_ones(b, d), _ones(b, d + 1)),
        "student_logits",
    ),
    (
        "distillation_rank",
        lambda b, d: distillation_loss(_ones(b), _ones(b)),
        "student_logits",
    ),
    (
        "distillation_temperature",
        lambda b, d: distillation_loss(_ones(b, d), _ones(b, d), -1.0),
        "temperature",
    ),
    (
        "DistillationLoss_temperature",
        lambda b, d: DistillationLoss(temperature=float("nan")),
        "temperature",
    ),
    (
        "DistillationLoss_shape",
        lambda b, d: DistillationLoss()(_ones(b, d), _ones(b + 1, d)),
        "student_logits",
    ),
    (
        "orthogonal_shape",
        lambda b, d: orthogonal_alignment_loss(_ones(b, d), _ones(b, d + 1)),
        "zx",
    ),
    (
        "OrthogonalAlignmentLoss_rank",
        lambda b, d: OrthogonalAlignmentLoss()(_ones(b, d, 2), _ones(b, d, 2)),
        "zx",
    ),
    (
        "soft_shape",
        lambda b, d: soft_orthogonal_alignment_loss(_ones(b, d), _ones(b + 1, d)),
        "fx",
    ),
    (
        "soft_weight",
        lambda b, d: soft_orthogonal_alignment_loss(_ones(b, d), _ones(b, d), -1.0),
        "orthogonality_weight",
    ),
    (
        "SoftOrthogonalAlignmentLoss_weight",
        lambda b, d: SoftOrthogonalAlignmentLoss(orthogonality_weight=float("inf")),
        "orthogonality_weight",
    ),
    (
        "SoftOrthogonalAlignmentLoss_rank",
        lambda b, d: SoftOrthogonalAlignmentLoss()(_ones(b), _ones(b)),
        "fx",
    ),
    (
        "clip_embeddings_width",
        lambda b, d: clip_loss_from_embeddings(_ones(b, d), _ones(b, d + 1), 1.0),
        "x",
    ),
    (
        "clip_embeddings_batch",
        lambda b, d: clip_loss_from_embeddings(_ones(b, d), _ones(b + 1, d), 1.0),
        "x",
    ),
    (
        "clip_embeddings_tile",
        lambda b, d: clip_loss_from_embeddings(_ones(b, d), _ones(b, d), 1.0, None, 0),
        "tile_size",
    ),
    (
        "clip_embeddings_scale",
        lambda b, d: clip_loss_from_embeddings(_ones(b, d), _ones(b, d), _ones(b + 1)),
        "scale",
    ),
    (
        "clip_embeddings_labels",
        lambda b, d: clip_loss_from_embeddings(
            _ones(b, d), _ones(b, d), 1.0, np.arange(b + 1), 2
        ),
        "labels",
    ),
    (
        "siglip_embeddings_bias",
        lambda b, d: siglip_loss_from_embeddings(
            _ones(b, d), _ones(b, d), 1.0, _ones(b + 1), tile_size=2
        ),
        "bias",
    ),
    (
        "siglip_embeddings_scale",
        lambda b, d: siglip_loss_from_embeddings(_ones(b, d), _ones(b, d), _ones(2, 2)),
        "scale",
    ),
    (
        "siglip_embeddings_rank",
        lambda b, d: siglip_loss_from_embeddings(_ones(b), _ones(b), 1.0),
        "x",
    ),
]


@pytest.mark.parametrize("case", INVALID, ids=[c[0] for c in INVALID])
@settings(max_examples=3, deadline=None)
@given(b=st.integers(1, 5), d=st.integers(1, 5))
def test_invalid_inputs_raise_value_error_naming_the_argument(case, b, d):
    _, make, arg = case
    with pytest.raises(ValueError) as error:
        make(b, d)
    assert_names_argument(error.value, arg)
