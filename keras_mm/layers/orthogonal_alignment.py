import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.utils.input_checks import check_built_features, check_modality_shapes


def orthonormal_columns(kernel):
    """`Q` of the QR decomposition of `kernel`, signs fixed so `diag(R) > 0`.

    The sign fix makes `kernel -> Q` a smooth, unique map (the Gram-Schmidt
    orthonormalisation of the columns), so gradients are well defined.
    Computed in float32.
    """
    kernel = ops.cast(kernel, "float32")
    q, r = ops.qr(kernel, mode="reduced")
    signs = ops.where(ops.diagonal(r) < 0, -1.0, 1.0)
    return q * ops.expand_dims(signs, 0)


@keras_mm_export("keras_mm.layers.OrthogonalAlignment")
class OrthogonalAlignment(keras.layers.Layer):
    """Orthogonal alignment of two views: projections with orthonormal columns.

    Seed section 4.2.1,

        min ||X W_x - Y W_y||_F^2   s.t.  W_x^T W_x = W_y^T W_y = I,

    with the constraint enforced by a **parametrisation**, not a penalty: the
    layer stores unconstrained `kernel_x` `(d_x, units)` and `kernel_y`
    `(d_y, units)` and uses `W = Q`, the orthonormal factor of their QR
    decomposition (Gram-Schmidt; signs fixed so that `diag(R) > 0`). Gradients
    flow through the QR into the kernels, so any optimizer trains the layer and
    `W^T W = I` holds to float32 round-off at every step, because `W` is
    recomputed from the kernels at every call rather than updated and drifting.
    Pair it with `keras_mm.losses.orthogonal_alignment_loss`. The QR runs in
    float32 whatever the compute dtype.

    `W^T W = I` fixes the norm of `W`, not the variance of `x W`: on raw views
    the distance is smallest along directions where both views barely vary.
    Whiten the views first (then the objective equals linear CCA's
    `max tr(W_x^T S_xy W_y)`; see `notebooks/02_alignment.ipynb`), or use
    `keras_mm.losses.deep_cca_loss` for a whitened objective.

    Args:
        units: int. Number of aligned dimensions; at most `min(d_x, d_y)`.
        kernel_initializer: initializer for the unconstrained kernels
            (default "orthogonal", so that `W` starts at the kernel itself).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list `[x, y]` of `(batch, d_x)` and `(batch, d_y)` tensors.

    Returns:
        List `[x W_x, y W_y]` of two `(batch, units)` tensors.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> layer = OrthogonalAlignment(units=2)
    >>> zx, zy = layer([np.ones((4, 5)), np.ones((4, 3))])
    >>> tuple(zx.shape), tuple(zy.shape)
    ((4, 2), (4, 2))
    >>> w_x = ops.convert_to_numpy(layer.projection_x)
    >>> float(np.abs(w_x.T @ w_x - np.eye(2)).max()) < 1e-6
    True

    Reference:
        Seed section 4.2.1; orthogonal (Stiefel-manifold) parametrisation by QR,
        as in `torch.nn.utils.parametrizations.orthogonal`.
    """

    def __init__(self, units, kernel_initializer="orthogonal", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(
                f"`units` must be a positive integer. Received: units={units!r}"
            )
        self.units = units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _check(self, inputs):
        name = self.__class__.__name__
        shapes = check_modality_shapes(name, inputs, same_features=False)
        if len(shapes) != 2:
            raise ValueError(
                f"{name}: `inputs` must be a list of exactly 2 views [x, y]. "
                f"Received: inputs shapes={[tuple(s) for s in shapes]}"
            )
        if min(shapes[0][-1], shapes[1][-1]) < self.units:
            raise ValueError(
                f"{name}: `units` ({self.units}) must be <= the feature size of "
                f"both views, (batch, d >= {self.units}), to have orthonormal "
                f"columns. Received: inputs shapes={[tuple(s) for s in shapes]}"
            )
        if self.built:
            kernels = [self.kernel_x.shape[0], self.kernel_y.shape[0]]
            check_built_features(name, shapes, kernels)
        return shapes

    def build(self, input_shape):
        shapes = self._check(input_shape)
        self.kernel_x = self.add_weight(
            name="kernel_x",
            shape=(shapes[0][-1], self.units),
            initializer=self.kernel_initializer,
            dtype="float32",  # the QR runs in float32 (no float16 QR on CPU)
            autocast=False,
        )
        self.kernel_y = self.add_weight(
            name="kernel_y",
            shape=(shapes[1][-1], self.units),
            initializer=self.kernel_initializer,
            dtype="float32",
            autocast=False,
        )

    @property
    def projection_x(self):
        """`W_x` `(d_x, units)`, float32, with exactly orthonormal columns."""
        return orthonormal_columns(self.kernel_x)

    @property
    def projection_y(self):
        """`W_y` `(d_y, units)`, float32, with exactly orthonormal columns."""
        return orthonormal_columns(self.kernel_y)

    def call(self, inputs):
        self._check(inputs)
        x, y = inputs
        w_x = ops.cast(self.projection_x, self.compute_dtype)
        w_y = ops.cast(self.projection_y, self.compute_dtype)
        return [ops.matmul(x, w_x), ops.matmul(y, w_y)]

    def compute_output_shape(self, input_shape):
        shapes = self._check(input_shape)
        return [(shapes[0][0], self.units), (shapes[1][0], self.units)]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
