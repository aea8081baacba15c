"""Property-based tests of every public layer: random valid and invalid inputs.

`fusion_property_test.py` fuzzes the calls of the fusion layers. Here:

- `ContrastiveLogits`, `LinearCCA`, `OrthogonalAlignment` and `ProjectionHead` on
  random sizes and dtypes: documented output shapes and dtypes, finite values,
  and the defining property of each (a NumPy oracle, orthonormal columns, unit
  norm, sorted correlations);
- every layer of `keras_mm.layers.__all__`: config round trip with random
  arguments; random invalid constructor arguments and invalid call inputs
  (wrong rank, mismatched sizes, a single tensor for a list, a mask of the
  wrong shape, a built layer called with another feature size) raise a
  `ValueError` that names the argument, never a backend error.
"""

import functools
import math

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keras import ops

import keras_mm.layers
from keras_mm.layers import (
    AttentionFusion,
    ConcatFusion,
    ContrastiveLogits,
    CrossModalAttention,
    GatedFusion,
    LinearCCA,
    OrthogonalAlignment,
    ProjectionHead,
)
from tests.property.property_utils import assert_names_argument

SETTINGS = settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
DTYPES = st.sampled_from(["float32", "float16", "bfloat16"])
TOLERANCE = {"float32": 1e-5, "float16": 1e-2, "bfloat16": 5e-2}


def _tensor(array, dtype):
    return ops.cast(np.asarray(array, "float32"), dtype)


def _numpy(x):
    """A tensor as float64 NumPy (through float32: NumPy has no bfloat16)."""
    return np.asarray(ops.convert_to_numpy(ops.cast(x, "float32")), "float64")


def _check_output(x, shape, dtype):
    assert tuple(x.shape) == shape
    assert keras.backend.standardize_dtype(x.dtype) == dtype
    assert np.all(np.isfinite(_numpy(x)))


def _run(fn, *args):
    """`fn(*args)` for a built layer; on JAX as one compiled program (eager JAX
    compiles every op separately for each new shape, several times slower)."""
    if keras.backend.backend() == "jax":
        import jax

        fn = jax.jit(fn)
    return fn(*args)


def _round_trip(layer):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    serialized = keras.layers.serialize(layer)
    assert serialized["registered_name"] == f"keras_mm>{type(layer).__name__}"
    revived = keras.layers.deserialize(serialized)
    assert type(revived) is type(layer) and revived.get_config() == config


@SETTINGS
@given(
    b_image=st.integers(1, 4),
    b_text=st.integers(1, 4),
    d=st.integers(1, 4),
    log_scale=st.floats(-2.0, 6.0),
    max_scale=st.sampled_from([None, 1.0, 100.0]),
    init_bias=st.one_of(st.none(), st.floats(-10.0, 10.0)),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
)
def test_contrastive_logits(
    b_image, b_text, d, log_scale, max_scale, init_bias, dtype, seed
):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(b_image, d)), rng.normal(size=(b_text, d))
    layer = ContrastiveLogits(
        init_scale=math.exp(log_scale),
        max_scale=max_scale,
        init_bias=init_bias,
        dtype=dtype,
    )
    xs, ys = _tensor(x, dtype), _tensor(y, dtype)
    layer.build(xs.shape, ys.shape)
    logits = _run(layer, xs, ys)
    _check_output(logits, (b_image, b_text), "float32")  # float32 whatever dtype
    scale = min(math.exp(log_scale), max_scale or math.inf)
    expected = scale * _numpy(xs) @ _numpy(ys).T + (init_bias or 0.0)
    # Only the stored log-scale and bias are rounded to `dtype`.
    tol = TOLERANCE[dtype] * (1.0 + np.abs(expected))
    assert np.all(np.abs(_numpy(logits) - expected) <= tol)
    _round_trip(layer)


@SETTINGS
@given(
    d_x=st.integers(1, 4),
    d_y=st.integers(1, 4),
    extra=st.integers(1, 6),
    epsilon=st.floats(1e-4, 1.0),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
)
def test_linear_cca(d_x, d_y, extra, epsilon, dtype, seed):
    rng = np.random.default_rng(seed)
    units = int(rng.integers(1, min(d_x, d_y) + 1))
    n = max(d_x, d_y) + extra
    x = rng.normal(size=(n, d_x))
    y = x[:, :1] @ rng.normal(size=(1, d_y)) + rng.normal(size=(n, d_y))
    layer = LinearCCA(units, epsilon=epsilon, dtype=dtype)
    layer.adapt(x, y)
    rho = _numpy(layer.canonical_correlations)
    assert np.all(rho >= -1e-6) and np.all(rho <= 1.0 + 1e-5)
    assert np.all(np.diff(rho) <= 1e-6)  # sorted, strongest first
    zx, zy = _run(lambda a, b: layer([a, b]), _tensor(x, dtype), _tensor(y, dtype))
    _check_output(zx, (n, units), dtype)
    _check_output(zy, (n, units), dtype)
    _round_trip(layer)


@SETTINGS
@given(
    b=st.integers(1, 4),
    d_x=st.integers(1, 4),
    d_y=st.integers(1, 4),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
)
def test_orthogonal_alignment(b, d_x, d_y, dtype, seed):
    rng = np.random.default_rng(seed)
    units = int(rng.integers(1, min(d_x, d_y) + 1))
    layer = OrthogonalAlignment(units, dtype=dtype)
    x, y = (
        _tensor(rng.normal(size=(b, d_x)), dtype),
        _tensor(rng.normal(size=(b, d_y)), dtype),
    )
    layer.build([x.shape, y.shape])
    zx, zy = _run(lambda a, b: layer([a, b]), x, y)
    _check_output(zx, (b, units), dtype)
    _check_output(zy, (b, units), dtype)
    for w, z, v in ((layer.projection_x, zx, x), (layer.projection_y, zy, y)):
        w = _numpy(w)
        np.testing.assert_allclose(w.T @ w, np.eye(units), atol=1e-5)
        expected = _numpy(v) @ w
        tol = TOLERANCE[dtype] * (1.0 + np.abs(expected))
        assert np.all(np.abs(_numpy(z) - expected) <= tol)
    _round_trip(layer)


@SETTINGS
@given(
    shape=st.lists(st.integers(1, 3), min_size=2, max_size=4),
    output_dim=st.integers(1, 4),
    hidden_dim=st.one_of(st.none(), st.integers(1, 4)),
    normalize=st.booleans(),
    zero_rows=st.booleans(),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
)
def test_projection_head(
    shape, output_dim, hidden_dim, normalize, zero_rows, dtype, seed
):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    if zero_rows:
        x[0] = 0.0  # a zero vector: finite output thanks to the epsilon
    layer = ProjectionHead(output_dim, hidden_dim, normalize=normalize, dtype=dtype)
    layer.build(tuple(shape))

    def outputs(x):
        unnormalized = layer.output_dense(layer.hidden_dense(x) if hidden_dim else x)
        return layer(x), unnormalized

    out, pre = _run(outputs, _tensor(x, dtype))
    _check_output(out, tuple(shape[:-1]) + (output_dim,), dtype)
    if normalize:
        norms = np.linalg.norm(_numpy(out), axis=-1)
        assert np.all(norms <= 1.0 + TOLERANCE[dtype])
        large = np.linalg.norm(_numpy(pre), axis=-1) > 1e-3
        np.testing.assert_allclose(norms[large], 1.0, atol=TOLERANCE[dtype])
    _round_trip(layer)


# name -> (constructor, valid arguments, {argument: kind of its valid values})
LAYERS = {
    "AttentionFusion": (AttentionFusion, {"units": 2}, {"units": "positive_int"}),
    "ConcatFusion": (
        ConcatFusion,
        {"hidden_dim": 3, "output_dim": 2},
        {"hidden_dim": "positive_int", "output_dim": "positive_int", "dropout": "rate"},
    ),
    "ContrastiveLogits": (
        ContrastiveLogits,
        {},
        {
            "init_scale": "positive",
            "max_scale": "positive_or_none",
            "init_bias": "finite_or_none",
        },
    ),
    "CrossModalAttention": (
        CrossModalAttention,
        {"num_heads": 2, "key_dim": 2, "intermediate_dim": 4},
        {
            "num_heads": "positive_int",
            "key_dim": "positive_int",
            "intermediate_dim": "positive_int",
            "dropout": "rate",
            "layer_norm_epsilon": "positive",
        },
    ),
    "GatedFusion": (GatedFusion, {}, {}),
    "LinearCCA": (
        LinearCCA,
        {"units": 2},
        {"units": "positive_int", "epsilon": "non_negative"},
    ),
    "OrthogonalAlignment": (
        OrthogonalAlignment,
        {"units": 2},
        {"units": "positive_int"},
    ),
    "ProjectionHead": (
        ProjectionHead,
        {"output_dim": 2},
        {
            "output_dim": "positive_int",
            "hidden_dim": "positive_int_or_none",
            "epsilon": "positive",
        },
    ),
}
NOT_A_NUMBER = st.sampled_from(["x", "", [1.0], math.nan])
BAD_VALUES = {
    "positive_int": st.one_of(
        st.integers(max_value=0), st.floats(0.5, 4.0), st.just(True), NOT_A_NUMBER
    ),
    "positive": st.one_of(st.floats(max_value=0.0), st.just(math.inf), NOT_A_NUMBER),
    "non_negative": st.one_of(
        st.floats(max_value=-1e-9), st.just(math.inf), NOT_A_NUMBER
    ),
    "rate": st.one_of(
        st.floats(max_value=-1e-9), st.floats(min_value=1.0), NOT_A_NUMBER
    ),
    "finite": st.sampled_from([math.inf, -math.inf, math.nan, "x", [1.0]]),
}
GOOD_VALUES = {
    "positive_int": st.integers(1, 8),
    "positive": st.floats(1e-6, 1e3),
    "non_negative": st.floats(0.0, 1e3),
    "rate": st.floats(0.0, 0.99),
    "finite": st.floats(-1e3, 1e3),
}


def _values(kind, good):
    """Good or bad values of an argument of `kind`; None is a good value of the
    "..._or_none" kinds and a bad value of the others."""
    base, or_none = kind.removesuffix("_or_none"), kind.endswith("_or_none")
    values = (GOOD_VALUES if good else BAD_VALUES)[base]
    return st.one_of(st.none(), values) if or_none == good else values


CONSTRUCTOR_CASES = [
    (name, arg) for name, (_, _, args) in sorted(LAYERS.items()) for arg in args
]


def test_every_public_layer_is_covered():
    assert sorted(LAYERS) == sorted(keras_mm.layers.__all__)
    assert sorted({case[0] for case in CALL_CASES}) == sorted(LAYERS)


@pytest.mark.parametrize(
    "name, arg", CONSTRUCTOR_CASES, ids=[f"{n}-{a}" for n, a in CONSTRUCTOR_CASES]
)
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_invalid_constructor_arguments(name, arg, data):
    cls, valid, kinds = LAYERS[name]
    value = data.draw(_values(kinds[arg], good=False), label=arg)
    with pytest.raises(ValueError) as error:
        cls(**{**valid, arg: value})
    assert_names_argument(error.value, arg)


@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_config_round_trip_with_random_arguments(data):
    for name, (cls, valid, kinds) in sorted(LAYERS.items()):
        kwargs = dict(valid)
        for arg, kind in kinds.items():
            if data.draw(st.booleans(), label=f"{name}.{arg} set"):
                kwargs[arg] = data.draw(_values(kind, good=True), label=f"{name}.{arg}")
        _round_trip(cls(**kwargs, dtype=data.draw(DTYPES, label=f"{name} dtype")))


def _ones(*shape):
    return np.ones(shape, "float32")


@functools.cache
def _built(name):
    """A layer built on width-4 inputs, shared by all examples (a call that
    raises does not change it)."""
    x, tokens = _ones(2, 4), _ones(2, 3, 4)
    layer = {
        "AttentionFusion": lambda: AttentionFusion(2),
        "GatedFusion": GatedFusion,
        "LinearCCA": lambda: LinearCCA(1),
        "OrthogonalAlignment": lambda: OrthogonalAlignment(1),
        "CrossModalAttention": lambda: CrossModalAttention(2, 2, 4),
    }[name]()
    if name == "CrossModalAttention":
        layer(tokens, tokens)
    else:
        layer([x, x])
    return layer


def _cma():
    return CrossModalAttention(2, 2, 4)


# (layer, function of random sizes (b, d) that must raise ValueError, the
# argument its message must name). `d + 4` is a width other than the built 4.
CALL_CASES = [
    ("AttentionFusion", lambda b, d: AttentionFusion(2)(_ones(b, d)), "inputs"),
    (
        "AttentionFusion",
        lambda b, d: _built("AttentionFusion")([_ones(b, d + 4)] * 2),
        "inputs",
    ),
    ("ConcatFusion", lambda b, d: ConcatFusion(3, 2)(_ones(b, d)), "inputs"),
    (
        "ConcatFusion",
        lambda b, d: ConcatFusion(3, 2)([_ones(b, d), _ones(b + 1, d)]),
        "inputs",
    ),
    ("GatedFusion", lambda b, d: GatedFusion()(_ones(b, d, 2)), "inputs"),
    (
        "GatedFusion",
        lambda b, d: _built("GatedFusion")([_ones(b, 4), _ones(b, d + 4)]),
        "inputs",
    ),
    (
        "ContrastiveLogits",
        lambda b, d: ContrastiveLogits()(_ones(b, d), _ones(b, d + 1)),
        "image_embeddings",
    ),
    (
        "ContrastiveLogits",
        lambda b, d: ContrastiveLogits()(_ones(b, d, 2), _ones(b, d)),
        "image_embeddings",
    ),
    ("LinearCCA", lambda b, d: LinearCCA(1)(_ones(b, d)), "inputs"),
    ("LinearCCA", lambda b, d: LinearCCA(1)([_ones(b, d)] * 3), "inputs"),
    ("LinearCCA", lambda b, d: LinearCCA(d + 1)([_ones(b, d)] * 2), "units"),
    (
        "LinearCCA",
        lambda b, d: _built("LinearCCA")([_ones(b, d + 4)] * 2),
        "inputs",
    ),
    (
        "LinearCCA",
        lambda b, d: _built("LinearCCA").adapt(_ones(9, d + 4), _ones(9, 4)),
        "adapt inputs",
    ),
    (
        "LinearCCA",
        lambda b, d: LinearCCA(1).adapt(_ones(d + 3, d), _ones(d + 2, d)),
        "adapt inputs",
    ),
    ("OrthogonalAlignment", lambda b, d: OrthogonalAlignment(1)(_ones(b, d)), "inputs"),
    (
        "OrthogonalAlignment",
        lambda b, d: OrthogonalAlignment(d + 1)([_ones(b, d)] * 2),
        "units",
    ),
    (
        "OrthogonalAlignment",
        lambda b, d: _built("OrthogonalAlignment")([_ones(b, 4), _ones(b, d + 4)]),
        "inputs",
    ),
    ("ProjectionHead", lambda b, d: ProjectionHead(2)(_ones(d)), "inputs"),
    (
        "ProjectionHead",
        lambda b, d: ProjectionHead(2)([_ones(b, d), _ones(b, d)]),
        "inputs",
    ),
    ("CrossModalAttention", lambda b, d: _cma()(_ones(b, d), _ones(b, 2, d)), "query"),
    (
        "CrossModalAttention",
        lambda b, d: _cma()(_ones(b, 2, d), _ones(b + 1, 2, d)),
        "query",
    ),
    (
        "CrossModalAttention",
        lambda b, d: _cma()(_ones(b, 2, d), _ones(b, 3, d), context_mask=_ones(b, 2)),
        "context_mask",
    ),
    (
        "CrossModalAttention",
        lambda b, d: _cma()(_ones(b, 2, d), _ones(b, 3, d), query_mask=_ones(b, 3)),
        "query_mask",
    ),
    (
        "CrossModalAttention",
        lambda b, d: _built("CrossModalAttention")(_ones(b, 2, 4), _ones(b, 3, d + 4)),
        "context",
    ),
    (
        "CrossModalAttention",
        lambda b, d: _built("CrossModalAttention")(_ones(b, 2, d + 4), _ones(b, 3, 4)),
        "query",
    ),
]


@pytest.mark.parametrize(
    "case", CALL_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CALL_CASES)]
)
@settings(max_examples=2, deadline=None)
@given(b=st.integers(1, 3), d=st.integers(1, 3))
def test_invalid_call_inputs(case, b, d):
    _, make, arg = case
    with pytest.raises(ValueError) as error:
        make(b, d)
    assert_names_argument(error.value, arg)
