"""Property-based tests of the fusion layers: random valid and invalid inputs."""

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_mm.layers import (
    AttentionFusion,
    ConcatFusion,
    CrossModalAttention,
    GatedFusion,
    ProjectionHead,
)

SETTINGS = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
DTYPES = st.sampled_from(["float32", "float16", "bfloat16"])


def _inputs(rng, n, batch, d, dtype, lengths=None):
    shapes = [(batch, d)] * n if lengths is None else [(batch, t, d) for t in lengths]
    return [keras.ops.cast(rng.normal(size=s).astype("float32"), dtype) for s in shapes]


def _finite(x):
    return np.all(np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(x, "float32"))))


@SETTINGS
@given(
    n=st.integers(2, 4),
    batch=st.integers(1, 4),
    d=st.integers(1, 6),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
    sequence=st.booleans(),
)
def test_attention_fusion_properties(n, batch, d, dtype, seed, sequence):
    rng = np.random.default_rng(seed)
    lengths = list(rng.integers(1, 4, size=n)) if sequence else None
    zs = _inputs(rng, n, batch, d, dtype, lengths)
    mask = rng.random((batch, n)) > 0.3
    layer = AttentionFusion(3, dtype=dtype)
    h, alpha = layer(zs, mask=mask, return_attention_scores=True)
    assert tuple(h.shape) == (batch, d)
    assert keras.backend.standardize_dtype(h.dtype) == dtype
    assert _finite(h) and _finite(alpha)
    alpha = keras.ops.convert_to_numpy(keras.ops.cast(alpha, "float32"))
    token_mask = mask if not sequence else np.repeat(mask, lengths, axis=1)
    assert np.all(alpha[~token_mask] == 0.0)
    present = token_mask.any(1)
    tol = 1e-5 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(alpha[present].sum(1), 1.0, atol=tol)
    revived = AttentionFusion.from_config(layer.get_config())
    assert revived.get_config() == layer.get_config()


@SETTINGS
@given(
    n=st.integers(2, 4),
    batch=st.integers(1, 4),
    d=st.integers(1, 6),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
)
def test_gated_and_concat_fusion_properties(n, batch, d, dtype, seed):
    rng = np.random.default_rng(seed)
    zs = _inputs(rng, n, batch, d, dtype)
    mask = rng.random((batch, n)) > 0.3
    gated = GatedFusion(dtype=dtype)
    h = gated(zs, mask=mask)
    assert tuple(h.shape) == (batch, d) and _finite(h)
    assert keras.backend.standardize_dtype(h.dtype) == dtype
    concat = ConcatFusion(4, 3, dtype=dtype)
    out = concat(zs, mask=mask)
    assert tuple(out.shape) == (batch, 3) and _finite(out)
    for layer in (gated, concat):
        assert type(layer).from_config(layer.get_config()).get_config() == (
            layer.get_config()
        )


@SETTINGS
@given(
    batch=st.integers(1, 3),
    tq=st.integers(1, 4),
    tc=st.integers(1, 5),
    d=st.integers(2, 6),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
)
def test_cross_modal_attention_and_projection_properties(batch, tq, tc, d, dtype, seed):
    rng = np.random.default_rng(seed)
    q = keras.ops.cast(rng.normal(size=(batch, tq, d)).astype("float32"), dtype)
    c = keras.ops.cast(rng.normal(size=(batch, tc, 3)).astype("float32"), dtype)
    context_mask = rng.random((batch, tc)) > 0.3
    context_mask[:, 0] = True
    out = CrossModalAttention(2, 2, 8, dtype=dtype)(q, c, context_mask=context_mask)
    assert tuple(out.shape) == (batch, tq, d) and _finite(out)
    p = ProjectionHead(4, dtype=dtype)(q)
    assert tuple(p.shape) == (batch, tq, 4) and _finite(p)


@SETTINGS
@given(
    kind=st.sampled_from(["count", "batch", "features", "rank", "mask"]),
    layer_name=st.sampled_from(["attention", "gated", "concat"]),
    seed=st.integers(0, 2**16),
)
def test_invalid_inputs_raise_value_error_naming_the_argument(kind, layer_name, seed):
    rng = np.random.default_rng(seed)
    b, d = int(rng.integers(1, 4)), int(rng.integers(2, 6))
    zs = [np.ones((b, d), "float32"), np.ones((b, d), "float32")]
    kwargs = {}
    if kind == "count":
        zs = zs[:1]
    elif kind == "batch":
        zs[1] = np.ones((b + 1, d), "float32")
    elif kind == "features":
        if layer_name == "concat":  # concat accepts different feature sizes
            return
        zs[1] = np.ones((b, d + 1), "float32")
    elif kind == "rank":
        zs[1] = np.ones((b, 1, 1, d), "float32")
    else:
        kwargs["mask"] = np.ones((b, 3), bool)
    layer = {
        "attention": lambda: AttentionFusion(2),
        "gated": GatedFusion,
        "concat": lambda: ConcatFusion(3, 2),
    }[layer_name]()
    arg = "mask" if kind == "mask" else "inputs"
    with pytest.raises(ValueError, match=f"`{arg}`.*Received: {arg}"):
        layer(zs, **kwargs)
