"""CLIP and SigLIP losses from embeddings, optionally tiled (memory linear in B).

`clip_loss_from_embeddings(x, y, scale, labels, tile_size)` and
`siglip_loss_from_embeddings(x, y, scale, bias, labels, tile_size)` equal
`clip_loss(scale * x @ y^T, labels)` and `siglip_loss(scale * x @ y^T + bias,
labels)`. With `tile_size=None` they compute exactly that (the naive path, one
`(B_image, B_text)` matrix). With an int `tile_size` the image rows are taken
`tile_size` at a time: each `(tile_size, B_text)` strip of logits is made, used
and dropped, so memory grows linearly in B.

- CLIP, forward: each strip gives the exact row log-sum-exp of its rows; the
  column log-sum-exp is accumulated online over strips (running max and
  rescaled sum, as in flash attention / Inf-CL).
- Backward (both losses): `keras.ops.custom_gradient` recomputes each strip and
  forms `d loss / d logits` from the saved `(B,)` log-sum-exps, then
  `dx = scale * dz @ y`, `dy += scale * dz^T @ x_strip`, `d scale = sum(dz * xy)`,
  `d bias = sum(dz)`. Autodiff through the loop would store every strip.

Why embeddings and not a `tile_size` on `clip_loss(logits)`: a function that
receives the `(B, B)` logits has already paid for them; the saving is only
possible before the matmul. The tiled path is the fused "similarity + loss".

Tiling is over a static number of strips with `keras.ops.fori_loop`, so it runs
eagerly, under `jax.jit` and inside `tf.function`; a batch that is not a
multiple of `tile_size` is zero-padded to one and the padded rows are masked.
"""

import math

from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.losses.clip_loss import clip_loss
from keras_mm.losses.loss_utils import (
    check_rank,
    is_positives_matrix,
    static_shape,
    to_float32,
)
from keras_mm.losses.siglip_loss import siglip_loss

# Stands for -inf in masked logits: exp(_NEG - m) is 0, and _NEG - _NEG is 0
# (not NaN) for a fully masked row.
_NEG = -1e30


def _check_inputs(fn_name, x, y, labels, tile_size, square):
    x, y = to_float32(x), to_float32(y)
    sx = check_rank(fn_name, x, 2, "x", "(B_image, d)")
    sy = check_rank(fn_name, y, 2, "y", "(B_text, d)")
    if None not in (sx[1], sy[1]) and sx[1] != sy[1]:
        raise ValueError(
            f"{fn_name}: `x` and `y` must have the same embedding size (last "
            f"dimension). Received: x shape={sx}, y shape={sy}"
        )
    if tile_size is not None and (
        isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 1
    ):
        raise ValueError(
            f"{fn_name}: `tile_size` must be None or a positive int. "
            f"Received: tile_size={tile_size!r}"
        )
    pair = isinstance(labels, (list, tuple)) or is_positives_matrix(labels)
    if (labels is not None or square) and not pair:
        if None not in (sx[0], sy[0]) and sx[0] != sy[0]:
            raise ValueError(
                f"{fn_name}: `x` and `y` must have the same batch size when "
                f"`labels` is {'None' if labels is None else 'a (B,) vector'}; "
                f"pass `labels=(image_labels, text_labels)` otherwise. "
                f"Received: x shape={sx}, y shape={sy}"
            )
    return x, y


def _row_col_labels(fn_name, x, y, labels):
    """Group ids of the rows `(B_image,)` and columns `(B_text,)`.

    A `(B_image, B_text)` matrix of positives comes back as `(matrix, None)`.
    """
    if is_positives_matrix(labels):
        matrix = to_float32(labels)
        expected = (static_shape(x)[0], static_shape(y)[0])
        got = static_shape(matrix)
        if any(None not in (a, b) and a != b for a, b in zip(got, expected)):
            raise ValueError(
                f"{fn_name}: a matrix `labels` must have shape {expected} "
                f"(B_image, B_text). Received: labels shape={got}"
            )
        return matrix, None
    if labels is None:
        return ops.arange(ops.shape(x)[0]), ops.arange(ops.shape(y)[0])
    if isinstance(labels, (list, tuple)):
        if len(labels) != 2:
            raise ValueError(
                f"{fn_name}: a tuple `labels` must be (image_labels, text_labels). "
                f"Received: {len(labels)} entries"
            )
        rows, cols = (ops.convert_to_tensor(v) for v in labels)
    else:
        rows = cols = ops.convert_to_tensor(labels)
    for v, n, arg in (
        (rows, static_shape(x)[0], "image"),
        (cols, static_shape(y)[0], "text"),
    ):
        shape = static_shape(v)
        if len(shape) != 1 or None not in (n, shape[0]) and shape[0] != n:
            raise ValueError(
                f"{fn_name}: `labels` must give one group id per {arg} ({n},). "
                f"Received: {arg} labels shape={shape}"
            )
    return rows, cols


class _Strips:
    """Zero-padded rows of `x`, cut into `n` strips of `size` rows."""

    def __init__(self, x, rows, tile_size):
        b = static_shape(x)[0]
        if b is not None and b <= tile_size:
            tile_size = b  # one strip, no padding
        self.size = tile_size
        self.dim = static_shape(x)[1] or ops.shape(x)[1]
        b = ops.shape(x)[0]
        self.batch = b
        self.n = (b + tile_size - 1) // tile_size
        pad = self.n * tile_size - b
        self.x = ops.concatenate([x, ops.zeros((pad, self.dim), x.dtype)], axis=0)
        self.row_shape = tuple(static_shape(rows)[1:])  # () or (B_text,)
        if None in self.row_shape:
            self.row_shape = (ops.shape(rows)[1],)
        padding = ops.zeros((pad, *self.row_shape), rows.dtype)
        self.rows = ops.concatenate([rows, padding], axis=0)
        self.mask = ops.concatenate(
            [ops.ones((b,), "float32"), ops.zeros((pad,), "float32")], axis=0
        )

    def get(self, i, *vectors):
        """Strip `i` of `x`, row labels, row mask and of `(n * size,)` vectors."""
        start = i * self.size
        xs = ops.slice(self.x, (start, 0), (self.size, self.dim))
        rows = ops.slice(
            self.rows,
            (start,) + (0,) * len(self.row_shape),
            (self.size, *self.row_shape),
        )
        cut = [rows, ops.slice(self.mask, (start,), (self.size,))]
        cut += [ops.slice(v, (start,), (self.size,)) for v in vectors]
        return (xs, *cut)

    def put(self, buffer, i, values):
        start = i * self.size
        if len(values.shape) == 1:
            return ops.slice_update(buffer, (start,), values)
        return ops.slice_update(buffer, (start, 0), values)

    def unpad(self, values):
        return values[: self.batch]


def _clip_tiled(x, y, scale, rows, cols, tile_size):
    @ops.custom_gradient
    def loss_fn(x, y, scale):
        # Differentiated tensors must come in as arguments (JAX's custom_vjp
        # may not close over them); the labels are closed over.
        strips = _Strips(x, rows, tile_size)
        b_text = ops.shape(y)[0]
        padded = strips.n * strips.size

        def strip(i, *vectors):
            xs, rs, ms, *cut = strips.get(i, *vectors)
            xy = ops.matmul(xs, ops.transpose(y))  # (size, B_text)
            pos = rs if cols is None else ops.equal(rs[:, None], cols[None, :])
            pos = ops.cast(pos, "float32") * ms[:, None]
            return xs, xy, scale * xy, pos, ms, cut

        def forward(i, state):
            m_c, s_c, a_c, n_c, lse_r, a_r, n_r = state
            _, _, z, pos, ms, _ = strip(i)
            zc = ops.where(ms[:, None] > 0, z, _NEG)
            m_new = ops.maximum(m_c, ops.max(zc, axis=0))
            s_c = s_c * ops.exp(m_c - m_new) + ops.sum(ops.exp(zc - m_new), axis=0)
            pz = pos * z
            lse_r = strips.put(lse_r, i, ops.logsumexp(z, axis=1))
            a_r = strips.put(a_r, i, ops.sum(pz, axis=1))
            n_r = strips.put(n_r, i, ops.sum(pos, axis=1))
            a_c = a_c + ops.sum(pz, axis=0)
            n_c = n_c + ops.sum(pos, axis=0)
            return m_new, s_c, a_c, n_c, lse_r, a_r, n_r

        zeros_c = ops.zeros((b_text,), "float32")
        zeros_r = ops.zeros((padded,), "float32")
        init = (ops.full((b_text,), _NEG, "float32"), zeros_c, zeros_c, zeros_c)
        state = ops.fori_loop(0, strips.n, forward, init + (zeros_r,) * 3)
        m_c, s_c, a_c, n_c, lse_r, a_r, n_r = state
        lse_c = m_c + ops.log(s_c)
        valid_r = ops.cast(n_r > 0, "float32")
        valid_c = ops.cast(n_c > 0, "float32")
        count_r = ops.maximum(ops.sum(valid_r), 1.0)
        count_c = ops.maximum(ops.sum(valid_c), 1.0)
        ce_r = lse_r - a_r / ops.maximum(n_r, 1.0)
        ce_c = lse_c - a_c / ops.maximum(n_c, 1.0)
        loss = 0.5 * (
            ops.sum(ce_r * valid_r) / count_r + ops.sum(ce_c * valid_c) / count_c
        )

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            g = 0.5 * ops.cast(upstream, "float32")
            w_r = g * valid_r / count_r
            w_c = g * valid_c / count_c
            inv_n_c = 1.0 / ops.maximum(n_c, 1.0)

            def backward(i, state):
                dx, dy, ds = state
                xs, xy, z, pos, ms, cut = strip(i, lse_r, n_r, w_r)
                lse_rs, n_rs, w_rs = cut
                p_r = ops.exp(z - lse_rs[:, None])
                p_c = ops.exp(z - lse_c[None, :]) * ms[:, None]
                dz = w_rs[:, None] * (p_r - pos / ops.maximum(n_rs, 1.0)[:, None])
                dz = dz + w_c[None, :] * (p_c - pos * inv_n_c[None, :])
                dx = strips.put(dx, i, scale * ops.matmul(dz, y))
                dy = dy + scale * ops.matmul(ops.transpose(dz), xs)
                return dx, dy, ds + ops.sum(dz * xy)

            init = (ops.zeros_like(strips.x), ops.zeros_like(y), ops.zeros(()))
            dx, dy, ds = ops.fori_loop(0, strips.n, backward, init)
            return strips.unpad(dx), dy, ds

        return loss, grad

    return loss_fn(x, y, scale)


def _siglip_tiled(x, y, scale, bias, rows, cols, tile_size):
    @ops.custom_gradient
    def loss_fn(x, y, scale, bias):
        strips = _Strips(x, rows, tile_size)
        b_image = ops.cast(ops.shape(x)[0], "float32")

        def strip(i):
            xs, rs, ms = strips.get(i)
            xy = ops.matmul(xs, ops.transpose(y))
            pos = rs if cols is None else ops.equal(rs[:, None], cols[None, :])
            signs = ops.cast(pos, "float32")
            return xs, xy, scale * xy + bias, 2.0 * signs - 1.0, ms

        def forward(i, total):
            _, _, z, signs, ms = strip(i)
            return total - ops.sum(ms[:, None] * ops.log_sigmoid(signs * z))

        loss = ops.fori_loop(0, strips.n, forward, ops.zeros(())) / b_image

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            g = ops.cast(upstream, "float32") / b_image

            def backward(i, state):
                dx, dy, ds, db = state
                xs, xy, z, signs, ms = strip(i)
                dz = (-g) * ms[:, None] * signs * ops.sigmoid(-signs * z)
                dx = strips.put(dx, i, scale * ops.matmul(dz, y))
                dy = dy + scale * ops.matmul(ops.transpose(dz), xs)
                return dx, dy, ds + ops.sum(dz * xy), db + ops.sum(dz)

            init = (ops.zeros_like(strips.x), ops.zeros_like(y))
            init += (ops.zeros(()), ops.zeros(()))
            dx, dy, ds, db = ops.fori_loop(0, strips.n, backward, init)
            return strips.unpad(dx), dy, ds, db

        return loss, grad

    return loss_fn(x, y, scale, bias)


def _scalar(fn_name, value, arg):
    value = to_float32(value)
    shape = static_shape(value)
    if None not in shape and math.prod(shape) != 1:
        raise ValueError(
            f"{fn_name}: `{arg}` must be a scalar. Received: {arg} shape={shape}"
        )
    return ops.reshape(value, ())


@keras_mm_export("keras_mm.losses.clip_loss_from_embeddings")
def clip_loss_from_embeddings(x, y, scale, labels=None, tile_size=None):
    """CLIP's symmetric InfoNCE loss of `scale * x @ y^T`, optionally tiled.

    Equals `clip_loss(scale * x @ y^T, labels)` (see `clip_loss` for the
    equation, labels and soft targets). With `tile_size` set, the `(B, B)`
    logits are never materialised: memory is `O(tile_size * B + B * d)` and
    the gradient (w.r.t. `x`, `y` and `scale`) is recomputed strip by strip, as
    in Inf-CL. Values and gradients match the naive path to float32 rounding.

    Args:
        x: `(B_image, d)` image embeddings (normalised by the caller).
        y: `(B_text, d)` text embeddings.
        scale: scalar tensor, the multiplicative temperature (e.g.
            `ContrastiveLogits.scale`); receives a gradient.
        labels: None (diagonal positives), `(B,)` group ids, a pair
            `(image_labels, text_labels)`, or a `(B_image, B_text)` 0/1 matrix
            of positives (cut into strips with the rows).
        tile_size: None (naive: one `(B_image, B_text)` matrix) or int, the
            number of image rows per strip. 256-1024 is a good range.

    Returns:
        Scalar float32 loss.

    Example:

    >>> import numpy as np
    >>> x = np.eye(4, 8, dtype="float32")
    >>> naive = float(clip_loss_from_embeddings(x, x, 10.0))
    >>> tiled = float(clip_loss_from_embeddings(x, x, 10.0, tile_size=3))
    >>> abs(naive - tiled) < 1e-6
    True

    Reference:
        Radford et al., 2021 (CLIP); Cheng et al., 2024, "Breaking the Memory
        Barrier: Near Infinite Batch Size Scaling for Contrastive Loss" (Inf-CL).
    """
    fn_name = "clip_loss_from_embeddings"
    x, y = _check_inputs(fn_name, x, y, labels, tile_size, square=True)
    scale = _scalar(fn_name, scale, "scale")
    if tile_size is None or static_shape(x)[0] == 0:  # naive (or empty batch)
        return clip_loss(scale * ops.matmul(x, ops.transpose(y)), labels)
    rows, cols = _row_col_labels(fn_name, x, y, labels)
    return _clip_tiled(x, y, scale, rows, cols, tile_size)


@keras_mm_export("keras_mm.losses.siglip_loss_from_embeddings")
def siglip_loss_from_embeddings(x, y, scale, bias=None, labels=None, tile_size=None):
    """SigLIP's pairwise sigmoid loss of `scale * x @ y^T + bias`, optionally tiled.

    Equals `siglip_loss(scale * x @ y^T + bias, labels)` (see `siglip_loss`).
    With `tile_size` set, the logits are made `tile_size` image rows at a time
    and the gradient (w.r.t. `x`, `y`, `scale` and `bias`) is recomputed strip
    by strip, so memory is `O(tile_size * B_text + B * d)`.

    Args:
        x: `(B_image, d)` image embeddings.
        y: `(B_text, d)` text embeddings.
        scale: scalar tensor, multiplicative scale; receives a gradient.
        bias: None or scalar tensor, additive bias; receives a gradient.
        labels: None (positives where `i == j`), `(B,)` group ids, a pair
            `(image_labels, text_labels)`, or a `(B_image, B_text)` 0/1 matrix
            of positives.
        tile_size: None (naive) or int, image rows per strip.

    Returns:
        Scalar float32 loss.

    Example:

    >>> import numpy as np
    >>> x = np.eye(4, 8, dtype="float32")
    >>> naive = float(siglip_loss_from_embeddings(x, x, 10.0, -5.0))
    >>> tiled = float(siglip_loss_from_embeddings(x, x, 10.0, -5.0, tile_size=3))
    >>> abs(naive - tiled) < 1e-6
    True

    Reference:
        Zhai et al., 2023 (SigLIP), algorithm 1 and its chunked variant.
    """
    fn_name = "siglip_loss_from_embeddings"
    x, y = _check_inputs(fn_name, x, y, labels, tile_size, square=False)
    scale = _scalar(fn_name, scale, "scale")
    bias = ops.zeros(()) if bias is None else _scalar(fn_name, bias, "bias")
    if tile_size is None or static_shape(x)[0] == 0:  # naive (or empty batch)
        return siglip_loss(scale * ops.matmul(x, ops.transpose(y)) + bias, labels)
    rows, cols = _row_col_labels(fn_name, x, y, labels)
    return _siglip_tiled(x, y, scale, bias, rows, cols, tile_size)
