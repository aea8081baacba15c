import math

import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.losses.loss_utils import check_rank, to_float32


def _check_args(fn_name, epsilon, num_components):
    try:
        eps = float(epsilon)
    except (TypeError, ValueError):
        eps = float("nan")
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(
            f"{fn_name}: `epsilon` must be a finite number > 0 (the ridge that "
            f"keeps the covariances invertible). Received: epsilon={epsilon!r}"
        )
    if num_components is not None and (
        not isinstance(num_components, int)
        or isinstance(num_components, bool)
        or num_components < 1
    ):
        raise ValueError(
            f"{fn_name}: `num_components` must be None or a positive integer. "
            f"Received: num_components={num_components!r}"
        )
    return eps


def _check_views(fn_name, zx, zy, num_components):
    """Validate the two views; return the number of components `k`."""
    sx = check_rank(fn_name, zx, 2, "zx", "(batch, features_x)")
    sy = check_rank(fn_name, zy, 2, "zy", "(batch, features_y)")
    received = f"Received: zx shape={sx}, zy shape={sy}"
    if sx[0] is not None and sy[0] is not None and sx[0] != sy[0]:
        raise ValueError(
            f"{fn_name}: `zx` and `zy` must have the same batch size. {received}"
        )
    if sx[1] is None or sy[1] is None:
        raise ValueError(
            f"{fn_name}: the feature sizes of `zx` and `zy` must be known. {received}"
        )
    max_k = min(sx[1], sy[1])
    k = max_k if num_components is None else num_components
    if k > max_k:
        raise ValueError(
            f"{fn_name}: `num_components` must be <= min(features_x, features_y) "
            f"= {max_k}. Received: num_components={num_components}, {received}"
        )
    batch = sx[0] if sx[0] is not None else sy[0]
    needed = max(sx[1], sy[1]) + 1
    if batch is not None and batch < needed:
        raise ValueError(
            f"{fn_name}: the batch must hold more examples than features (at "
            f"least max(features_x, features_y) + 1 = {needed}); otherwise the "
            f"centred covariances are singular and the correlations are "
            f"meaningless (1 by construction). Use a larger batch or fewer "
            f"features. {received}"
        )
    return k


def _canonical_correlation_sum(zx, zy, epsilon, k):
    """Sum of the top-`k` canonical correlations of two batches (float32)."""
    m = ops.cast(ops.shape(zx)[0], "float32")
    hx = zx - ops.mean(zx, axis=0, keepdims=True)
    hy = zy - ops.mean(zy, axis=0, keepdims=True)
    dx, dy = zx.shape[-1], zy.shape[-1]
    sxx = ops.matmul(ops.transpose(hx), hx) / (m - 1.0)
    syy = ops.matmul(ops.transpose(hy), hy) / (m - 1.0)
    sxy = ops.matmul(ops.transpose(hx), hy) / (m - 1.0)
    sxx = sxx + epsilon * ops.eye(dx, dtype="float32")
    syy = syy + epsilon * ops.eye(dy, dtype="float32")
    # Whiten with Cholesky factors instead of eigh-based inverse square roots:
    # Lx^-1 Sxy Ly^-T = Qx (Sxx^-1/2 Sxy Syy^-1/2) Qy^T for orthogonal Qx, Qy,
    # so it has the same singular values, and Cholesky/triangular-solve
    # gradients contain no 1/(lambda_i - lambda_j) terms (eigh's do, and they
    # are inf/NaN for repeated eigenvalues).
    lx = ops.cholesky(sxx)
    ly = ops.cholesky(syy)
    left = ops.solve_triangular(lx, sxy, lower=True)  # Lx^-1 Sxy, (dx, dy)
    t = ops.transpose(
        ops.solve_triangular(ly, ops.transpose(left), lower=True)
    )  # Lx^-1 Sxy Ly^-T
    # sum_{i<=k} s_i(T) = tr(U_k^T T V_k) at T's own singular vectors. With U, V
    # held constant the gradient is U_k V_k^T, the exact (sub)gradient of the
    # top-k singular-value sum (envelope theorem): no differentiation through
    # the SVD, so repeated singular values cannot produce NaN either.
    u, _, vt = ops.svd(ops.stop_gradient(t), full_matrices=False)
    u_k = ops.stop_gradient(u[:, :k])
    v_k = ops.stop_gradient(ops.transpose(vt[:k, :]))
    return ops.sum(u_k * ops.matmul(t, v_k))


@keras_mm_export("keras_mm.losses.deep_cca_loss")
def deep_cca_loss(zx, zy, epsilon=1e-3, num_components=None):
    """Deep CCA objective of Andrew et al. 2013 (seed section 4.2.2).

    With batch-centred features `H_x`, `H_y` (`m` rows) and ridge `epsilon`,

        S_xx = H_x^T H_x / (m - 1) + eps I,   S_yy likewise,
        S_xy = H_x^T H_y / (m - 1),
        L = - sum_{i <= k} sigma_i( S_xx^-1/2 S_xy S_yy^-1/2 ),

    minus the total of the top-`k` canonical correlations of the two views.
    Minimising it trains the two networks so that their outputs are maximally
    correlated; the whitening makes the seed's constraints `f^T f = g^T g = I`
    hold exactly for the canonical variates.

    Numerics (float32 throughout): the whitening uses Cholesky factors (same
    singular values as the inverse square roots) and the singular values are
    taken as `tr(U_k^T T V_k)` with the singular vectors held constant, whose
    gradient `U_k V_k^T` is exact. Neither step differentiates an eigen or
    singular value decomposition, so repeated eigenvalues or singular values
    (identical views, constant features) give finite gradients on every
    backend, unlike `eigh`-based implementations.

    Args:
        zx: `(batch, features_x)` tensor, the first network's output.
        zy: `(batch, features_y)` tensor, the second network's output.
        epsilon: float > 0. Ridge added to both covariances.
        num_components: int or None. The number `k` of correlations summed;
            None means `min(features_x, features_y)`.

    Returns:
        Scalar float32 loss, in `[-k, 0]` up to the ridge.

    Raises:
        ValueError: if the batch (when known) has no more examples than
            features, or `k` exceeds the feature sizes.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(32, 3))
    >>> round(float(deep_cca_loss(x, x, epsilon=1e-6)), 3)
    -3.0

    Reference:
        Andrew, Arora, Bilmes and Livescu, 2013, "Deep Canonical Correlation
        Analysis", section 3; seed section 4.2.2.
    """
    name = "deep_cca_loss"
    eps = _check_args(name, epsilon, num_components)
    zx, zy = to_float32(zx), to_float32(zy)
    k = _check_views(name, zx, zy, num_components)
    return -_canonical_correlation_sum(zx, zy, eps, k)


@keras_mm_export("keras_mm.losses.DeepCCALoss")
class DeepCCALoss(keras.losses.Loss):
    """Deep CCA objective as a `keras.losses.Loss` (seed section 4.2.2).

    See `deep_cca_loss`. Call convention: `y_true` = first view `z_x`,
    `y_pred` = second view `z_y`; in a model's `compute_loss` write
    `DeepCCALoss()(zx, zy)`. The objective is a batch statistic, so `call`
    returns the scalar loss and `sample_weight` only rescales it.

    Args:
        epsilon: float > 0. Ridge added to both covariances.
        num_components: int or None. Number of correlations summed.
        name: str. Name of the loss.
        reduction: Keras reduction, default `"sum_over_batch_size"`.
        dtype: computation dtype; float32 by default (keep it).

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(32, 3))
    >>> round(float(DeepCCALoss(epsilon=1e-6)(x, x)), 3)
    -3.0

    Reference:
        Andrew et al., 2013 (Deep CCA).
    """

    def __init__(
        self,
        epsilon=1e-3,
        num_components=None,
        name="deep_cca_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.epsilon = _check_args(self.__class__.__name__, epsilon, num_components)
        self.num_components = num_components

    def call(self, y_true, y_pred):
        return deep_cca_loss(
            y_true,
            y_pred,
            epsilon=self.epsilon,
            num_components=self.num_components,
        )

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon, "num_components": self.num_components})
        return config
