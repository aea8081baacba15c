"""Helpers shared by keras_mm's losses: float32 casting, shape checks, positives.

Every check raises `ValueError` naming the function, the argument, what was
expected and what was received. Unknown (traced) sizes are not compared.
"""

from keras import ops


def _dim(d):
    if d is None:
        return None
    try:
        return int(d)
    except Exception:  # symbolic dimension while tracing
        return None


def static_shape(x):
    """The static shape of a tensor or array as a tuple (None where unknown)."""
    return tuple(_dim(d) for d in getattr(x, "shape", ()))


def to_float32(x):
    """Convert `x` to a float32 tensor, whatever its input dtype."""
    x = ops.convert_to_tensor(x)
    if x.dtype != "float32":
        x = ops.cast(x, "float32")
    return x


def check_rank(fn_name, x, rank, arg, layout):
    """Check that `x` has `rank` dimensions; return its static shape."""
    shape = static_shape(x)
    if len(shape) != rank:
        raise ValueError(
            f"{fn_name}: `{arg}` must have rank {rank} {layout}. "
            f"Received: {arg} shape={shape}"
        )
    return shape


def check_same_shape(fn_name, a, b, arg_a, arg_b):
    """Check that two tensors have equal static shapes (unknown sizes match)."""
    sa, sb = static_shape(a), static_shape(b)
    same = len(sa) == len(sb) and all(
        x is None or y is None or x == y for x, y in zip(sa, sb)
    )
    if not same:
        raise ValueError(
            f"{fn_name}: `{arg_a}` and `{arg_b}` must have the same shape. "
            f"Received: {arg_a} shape={sa}, {arg_b} shape={sb}"
        )


def check_logits(fn_name, logits, square):
    """Check `(B_image, B_text)` similarity logits; return the static shape."""
    shape = check_rank(fn_name, logits, 2, "logits", "(B_image, B_text)")
    if square and None not in shape and shape[0] != shape[1]:
        raise ValueError(
            f"{fn_name}: `logits` must be square (B, B) when `labels` is None or a "
            f"single (B,) vector; pass `labels=(image_labels, text_labels)` for "
            f"non-square logits. Received: logits shape={shape}"
        )
    return shape


def _check_label_vector(fn_name, labels, size, arg):
    shape = static_shape(labels)
    if len(shape) != 1 or (size is not None and shape[0] not in (None, size)):
        raise ValueError(
            f"{fn_name}: `{arg}` must have shape ({size},), one group id per "
            f"{'row' if 'text' not in arg else 'column'} of `logits`. "
            f"Received: {arg} shape={shape}"
        )


def positives(fn_name, logits, labels):
    """Return the float32 `(B_image, B_text)` matrix of positive pairs.

    `labels` is None (positives on the diagonal), a `(B,)` vector of group ids
    (pairs with equal ids are positives; square logits only), a pair
    `(image_labels, text_labels)` of `(B_image,)` and `(B_text,)` vectors, or
    the `(B_image, B_text)` 0/1 matrix of positives itself.
    """
    shape = static_shape(logits)
    if is_positives_matrix(labels):
        matrix = to_float32(labels)
        if static_shape(matrix) != shape and None not in shape:
            raise ValueError(
                f"{fn_name}: a matrix `labels` must have the shape of `logits` "
                f"{shape}, 1 where text j describes image i. Received: labels "
                f"shape={static_shape(matrix)}"
            )
        return matrix
    if labels is None:
        rows = ops.arange(ops.shape(logits)[0])
        cols = ops.arange(ops.shape(logits)[1])
    elif isinstance(labels, (list, tuple)):
        if len(labels) != 2:
            raise ValueError(
                f"{fn_name}: a tuple `labels` must be (image_labels, text_labels). "
                f"Received: {len(labels)} entries"
            )
        rows, cols = (ops.convert_to_tensor(x) for x in labels)
        _check_label_vector(fn_name, rows, shape[0], "labels[0] (image_labels)")
        _check_label_vector(fn_name, cols, shape[1], "labels[1] (text_labels)")
    else:
        rows = cols = ops.convert_to_tensor(labels)
        _check_label_vector(fn_name, rows, shape[0], "labels")
    equal = ops.equal(ops.expand_dims(rows, 1), ops.expand_dims(cols, 0))
    return ops.cast(equal, "float32")


def is_positives_matrix(labels):
    """Whether `labels` is a `(B_image, B_text)` matrix of positives (rank 2)."""
    if labels is None or isinstance(labels, (list, tuple)):
        return False
    return len(static_shape(labels)) == 2


def default_labels(y_pred, pair):
    """Labels equivalent to `labels=None`, for a Loss class called with None.

    Keras' `Loss.__call__` converts `y_true` to a tensor, so `None` cannot pass
    through it. `arange(B)` (or the pair `(arange(B_image), arange(B_text))` when
    `pair` is True) puts the positives on the diagonal exactly as `labels=None`.
    """
    y_pred = ops.convert_to_tensor(y_pred)
    if len(y_pred.shape) != 2:
        return None  # the loss raises its own shape error
    rows = ops.arange(ops.shape(y_pred)[0])
    if not pair:
        return rows
    return (rows, ops.arange(ops.shape(y_pred)[1]))
