"""Input validation shared by keras_mm layers and models.

Every check raises `ValueError` naming the argument, what was expected and what was
received, so a bad input never surfaces as a backend stack trace. Shapes may hold
`None` (unknown while tracing a functional model); unknown sizes are not compared.
"""

import math


def _dim(d):
    """A static dimension as int, or None if unknown or symbolic."""
    if d is None:
        return None
    try:
        return int(d)
    except Exception:  # symbolic dimension while tracing (e.g. jax.export)
        return None


def _shape(x):
    """Return the shape of a tensor, KerasTensor or shape tuple as a tuple."""
    shape = getattr(x, "shape", x)
    return tuple(_dim(d) for d in shape)


def _fmt(shapes):
    return "[" + ", ".join(str(tuple(s)) for s in shapes) + "]"


def _is_one_shape(x):
    """Whether `x` is a single shape tuple, as `build` receives for one tensor."""
    if not isinstance(x, (list, tuple)) or not x:
        return False
    return all(d is None or isinstance(d, int) for d in x)


def check_float(arg, value, low=None, high=None, low_open=False, high_open=False):
    """Return `value` as a finite float in an interval, or raise ValueError.

    Args:
        arg: str. The argument name used in the message.
        value: the argument's value.
        low, high: float or None. Bounds of the interval (None: unbounded).
        low_open, high_open: bool. Whether the bound itself is excluded.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    ok = math.isfinite(number)
    if ok and low is not None:
        ok = number > low if low_open else number >= low
    if ok and high is not None:
        ok = number < high if high_open else number <= high
    if not ok:
        left = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
        right = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        raise ValueError(
            f"`{arg}` must be a finite number in {left}, {right}. "
            f"Received: {arg}={value!r}"
        )
    return number


def check_modality_shapes(
    layer_name,
    inputs,
    min_modalities=2,
    ranks=(2,),
    same_features=True,
    arg="inputs",
):
    """Check a list of per-modality tensors (or shapes) and return their shapes.

    Args:
        layer_name: str. Name used in the error message.
        inputs: list of tensors or shape tuples, one per modality.
        min_modalities: int. Least number of modalities accepted.
        ranks: tuple of int. Accepted ranks; all modalities must share one.
        same_features: bool. Whether the last dimension must match across
            modalities.
        arg: str. The argument name used in the message.

    Returns:
        The list of shapes as tuples.
    """
    if _is_one_shape(inputs):
        raise ValueError(
            f"{layer_name}: `{arg}` must be a list of at least {min_modalities} "
            f"tensors, one per modality. Received: {arg}=a single tensor of shape "
            f"{_shape(inputs)}"
        )
    if not isinstance(inputs, (list, tuple)):
        raise ValueError(
            f"{layer_name}: `{arg}` must be a list of at least {min_modalities} "
            f"tensors, one per modality. Received: {arg} of type "
            f"{type(inputs).__name__} with shape {_shape(inputs)}"
        )
    shapes = [_shape(x) for x in inputs]
    received = f"Received: {arg} shapes={_fmt(shapes)}"
    if len(shapes) < min_modalities:
        raise ValueError(
            f"{layer_name}: `{arg}` must hold at least {min_modalities} modalities. "
            f"{received}"
        )
    rank_set = {len(s) for s in shapes}
    if len(rank_set) != 1 or not rank_set <= set(ranks):
        expected = " or ".join(str(r) for r in ranks)
        raise ValueError(
            f"{layer_name}: every tensor in `{arg}` must have the same rank, one of "
            f"{expected} (batch, ..., features). {received}"
        )
    batches = {s[0] for s in shapes if s[0] is not None}
    if len(batches) > 1:
        raise ValueError(
            f"{layer_name}: every tensor in `{arg}` must have the same batch size. "
            f"{received}"
        )
    if same_features:
        features = {s[-1] for s in shapes if s[-1] is not None}
        if len(features) > 1:
            raise ValueError(
                f"{layer_name}: every tensor in `{arg}` must have the same feature "
                f"size (last dimension). {received}"
            )
    if any(s[-1] is None for s in shapes):
        raise ValueError(
            f"{layer_name}: the feature size (last dimension) of every tensor in "
            f"`{arg}` must be known. {received}"
        )
    return shapes


def check_built_features(layer_name, shapes, expected, arg="inputs"):
    """Check the feature sizes of a built layer's inputs against its weights.

    Args:
        layer_name: str. Name used in the error message.
        shapes: list of input shapes, one per input.
        expected: list of int. The feature size (last dimension) of each input
            when the layer was built; other sizes would fail inside a backend
            matmul with a backend-specific error.
        arg: str. The argument name used in the message.
    """
    received = [s[-1] for s in shapes]
    if any(r is not None and r != e for r, e in zip(received, expected)):
        raise ValueError(
            f"{layer_name}: this layer was built for `{arg}` with feature sizes "
            f"(last dimension) {list(expected)}. Received: {arg} "
            f"shapes={_fmt(shapes)}"
        )


def check_mask_shape(layer_name, mask, expected, arg="mask"):
    """Check that `mask` has the `expected` shape (None entries match anything)."""
    shape = _shape(mask)
    ok = len(shape) == len(expected) and all(
        e is None or s is None or e == s for s, e in zip(shape, expected)
    )
    if not ok:
        raise ValueError(
            f"{layer_name}: `{arg}` must have shape {tuple(expected)}. "
            f"Received: {arg} shape={shape}"
        )
    return shape


def modality_mask(layer_name, mask, inputs, dtype):
    """Return a `(batch, n)` modality mask of `dtype`, or None.

    `mask` is None, a `(batch, n)` tensor, or the list of per-input `(batch,)`
    masks that Keras propagates to merge layers (`None` entries mean present).
    """
    from keras import ops

    n = len(inputs)
    if isinstance(mask, (list, tuple)):
        if len(mask) != n:
            raise ValueError(
                f"{layer_name}: a list `mask` must hold one entry per modality "
                f"({n}). Received: {len(mask)} entries"
            )
        if all(m is None for m in mask):
            return None
        columns = []
        for i, m in enumerate(mask):
            if m is None:
                m = ops.ones_like(inputs[i][:, 0])
            check_mask_shape(layer_name, m, (_shape(inputs[i])[0],), arg=f"mask[{i}]")
            columns.append(ops.cast(m, dtype))
        return ops.stack(columns, axis=1)
    if mask is None:
        return None
    check_mask_shape(layer_name, mask, (_shape(inputs[0])[0], n))
    return ops.cast(mask, dtype)
