import math

import keras
import numpy as np
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.utils.input_checks import check_built_features, check_modality_shapes


def _inverse_sqrt(cov):
    """`cov^-1/2` of a symmetric positive definite float64 matrix."""
    w, v = np.linalg.eigh(cov)
    return (v / np.sqrt(w)) @ v.T


@keras_mm_export("keras_mm.layers.LinearCCA")
class LinearCCA(keras.layers.Layer):
    """Closed-form (linear) canonical correlation analysis as a layer.

    `adapt(x, y)` fits the classic CCA of Hotelling (1936) on data, like
    `keras.layers.Normalization.adapt`: with centred views and ridge `epsilon`,

        S_xx = X^T X / (n - 1) + eps I,   S_yy likewise,  S_xy = X^T Y / (n - 1),
        S_xx^-1/2 S_xy S_yy^-1/2 = U diag(rho) V^T,
        A = S_xx^-1/2 U_k,   B = S_yy^-1/2 V_k,

    and the call returns the canonical variates `[(x - mu_x) A, (y - mu_y) B]`,
    whose `i`-th columns have correlation `rho_i` (on the adapted data) and which
    are uncorrelated across columns. This is the linear, closed-form solution of
    the seed's section 4.2 objective. `adapt` runs in float64 NumPy (data
    preprocessing); the results are stored as non-trainable float32 variables
    (`mean_x`, `mean_y`, `projection_x`, `projection_y`,
    `canonical_correlations`), so an adapted layer saves in `.keras` files.
    Before `adapt`, the projections are zero.

    Args:
        units: int. Number `k` of canonical components kept.
        epsilon: float >= 0. Ridge added to both covariances.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list `[x, y]` of `(batch, d_x)` and `(batch, d_y)` tensors.

    Returns:
        List of two `(batch, units)` tensors, the canonical variates.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 3))
    >>> y = x[:, :2] + 0.1 * rng.normal(size=(200, 2))
    >>> cca = LinearCCA(units=2)
    >>> cca.adapt(x, y)
    >>> rho = ops.convert_to_numpy(cca.canonical_correlations)
    >>> [round(float(r), 2) for r in rho]
    [0.99, 0.99]

    Reference:
        Hotelling, 1936, "Relations between two sets of variates"; seed
        section 4.2.
    """

    def __init__(self, units, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(
                f"`units` must be a positive integer. Received: units={units!r}"
            )
        try:
            eps = float(epsilon)
        except (TypeError, ValueError):
            eps = float("nan")
        if not (eps >= 0 and math.isfinite(eps)):
            raise ValueError(
                f"`epsilon` must be a finite number >= 0. Received: epsilon={epsilon!r}"
            )
        self.units = units
        self.epsilon = eps

    def _check(self, inputs, arg="inputs"):
        name = self.__class__.__name__
        shapes = check_modality_shapes(name, inputs, same_features=False, arg=arg)
        received = f"Received: {arg} shapes={[tuple(s) for s in shapes]}"
        if len(shapes) != 2:
            raise ValueError(
                f"{name}: `{arg}` must be a list of exactly 2 views [x, y]. {received}"
            )
        if min(shapes[0][-1], shapes[1][-1]) < self.units:
            raise ValueError(
                f"{name}: `units` ({self.units}) must be <= the feature size of "
                f"both views, (batch, d >= {self.units}). {received}"
            )
        if self.built:
            means = [self.mean_x.shape[0], self.mean_y.shape[0]]
            check_built_features(name, shapes, means, arg=arg)
        return shapes

    def build(self, input_shape):
        shapes = self._check(input_shape)
        d_x, d_y = shapes[0][-1], shapes[1][-1]

        def weight(name, shape):
            return self.add_weight(
                name=name,
                shape=shape,
                initializer="zeros",
                trainable=False,
                autocast=False,
            )

        self.mean_x = weight("mean_x", (d_x,))
        self.mean_y = weight("mean_y", (d_y,))
        self.projection_x = weight("projection_x", (d_x, self.units))
        self.projection_y = weight("projection_y", (d_y, self.units))
        self.canonical_correlations = weight("canonical_correlations", (self.units,))

    def adapt(self, x, y):
        """Fit the canonical directions to paired data.

        Args:
            x: `(n, d_x)` array or tensor, the first view.
            y: `(n, d_y)` array or tensor, the second view (same `n`).
        """
        name = self.__class__.__name__
        x = np.asarray(ops.convert_to_numpy(x), "float64")
        y = np.asarray(ops.convert_to_numpy(y), "float64")
        shapes = self._check([x, y], arg="adapt inputs")
        n = shapes[0][0]
        if n <= self.units:
            raise ValueError(
                f"{name}: `adapt` needs more examples than `units` "
                f"({self.units}). Received: adapt inputs shapes="
                f"{[tuple(s) for s in shapes]}"
            )
        if not self.built:
            self.build([(None, shapes[0][1]), (None, shapes[1][1])])
        mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
        hx, hy = x - mean_x, y - mean_y
        sxx = hx.T @ hx / (n - 1) + self.epsilon * np.eye(hx.shape[1])
        syy = hy.T @ hy / (n - 1) + self.epsilon * np.eye(hy.shape[1])
        sxy = hx.T @ hy / (n - 1)
        for label, cov in (("x", sxx), ("y", syy)):
            if np.linalg.eigvalsh(cov)[0] <= 1e-12 * max(1.0, np.trace(cov)):
                raise ValueError(
                    f"{name}: the covariance of view {label} is singular (constant "
                    f"or collinear features); use `epsilon > 0`. Received: "
                    f"epsilon={self.epsilon}"
                )
        isqrt_x, isqrt_y = _inverse_sqrt(sxx), _inverse_sqrt(syy)
        u, rho, vt = np.linalg.svd(isqrt_x @ sxy @ isqrt_y)
        k = self.units
        self.mean_x.assign(mean_x.astype("float32"))
        self.mean_y.assign(mean_y.astype("float32"))
        self.projection_x.assign((isqrt_x @ u[:, :k]).astype("float32"))
        self.projection_y.assign((isqrt_y @ vt[:k].T).astype("float32"))
        self.canonical_correlations.assign(rho[:k].astype("float32"))

    def call(self, inputs):
        self._check(inputs)
        x, y = inputs
        dtype = self.compute_dtype
        x = ops.cast(x, "float32") - self.mean_x
        y = ops.cast(y, "float32") - self.mean_y
        return [
            ops.cast(ops.matmul(x, self.projection_x), dtype),
            ops.cast(ops.matmul(y, self.projection_y), dtype),
        ]

    def compute_output_shape(self, input_shape):
        shapes = self._check(input_shape)
        return [(shapes[0][0], self.units), (shapes[1][0], self.units)]

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "epsilon": self.epsilon})
        return config
