"""The vector-quantisation bottleneck of the `ImageTokenizer` (VQ-VAE)."""

import keras
from keras import ops

from keras_mm.models.model_utils import check_positive_int


def vq_losses(latents, quantized):
    """`(commitment, codebook)` losses of VQ-VAE (eq. 3), float32 scalars.

    commitment = mean (z - sg(e))^2 trains the encoder; codebook =
    mean (sg(z) - e)^2 trains the codebook (unused with EMA updates).
    """
    z = ops.cast(latents, "float32")
    e = ops.cast(quantized, "float32")
    commitment = ops.mean(ops.square(z - ops.stop_gradient(e)))
    codebook = ops.mean(ops.square(ops.stop_gradient(z) - e))
    return commitment, codebook


@keras.saving.register_keras_serializable(package="keras_mm")
class VectorQuantizer(keras.layers.Layer):
    """Nearest-code lookup in a learned codebook, with EMA codebook updates.

    VQ-VAE (van den Oord et al., 2017, eq. 1-3): every latent vector `z` is
    replaced by its nearest codebook vector `e_k`, `k = argmin_j ||z - e_j||^2`.
    The layer returns the codebook vectors themselves (to train the codebook
    through `vq_losses`) and their straight-through estimate
    `z + stop_gradient(e_k - z)`: equal to `e_k`, with the gradient of `z`.

    With `ema_decay` (the default, Razavi et al., 2019, appendix A.1) the
    codebook is not trained by gradients: each training call moves `e_j` to an
    exponential moving average of the latents assigned to it (Laplace-smoothed
    counts), and restarts a "dead" code whose average count fell below
    `dead_code_threshold` on the batch latents that are worst quantised, so the
    whole codebook stays in use. `ema_decay=None` trains the codebook with the
    codebook loss instead.

    Args:
        num_codes: int. Codebook size `K`.
        code_dim: int. Width of a code vector.
        ema_decay: float in (0, 1) or None.
        dead_code_threshold: float >= 0. EMA count (latents per batch
            assigned to the code) below which it is restarted (EMA mode only;
            0 disables restarts).
        epsilon: float. Laplace smoothing of the EMA counts.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `(..., code_dim)` float latents.
        training: bool. EMA updates happen only when True.

    Returns:
        A dict: `"quantized"` `(..., code_dim)` codebook vectors,
        `"straight_through"` (the same values, gradient to `inputs`) and
        `"codes"` `(...)` int32 indices.
    """

    def __init__(
        self,
        num_codes,
        code_dim,
        ema_decay=0.99,
        dead_code_threshold=1.0,
        epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("num_codes", num_codes)
        check_positive_int("code_dim", code_dim)
        if ema_decay is not None and not 0.0 < float(ema_decay) < 1.0:
            raise ValueError(
                "`ema_decay` must be None or a float in (0, 1). Received: "
                f"ema_decay={ema_decay!r}"
            )
        if not float(dead_code_threshold) >= 0.0:
            raise ValueError(
                "`dead_code_threshold` must be >= 0. Received: "
                f"dead_code_threshold={dead_code_threshold!r}"
            )
        self.num_codes = num_codes
        self.code_dim = code_dim
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        self.dead_code_threshold = float(dead_code_threshold)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        if input_shape[-1] != self.code_dim:
            raise ValueError(
                f"VectorQuantizer: the last axis of `inputs` must be code_dim="
                f"{self.code_dim}. Received: inputs shape={tuple(input_shape)}"
            )
        use_ema = self.ema_decay is not None
        self.codebook = self.add_weight(
            name="codebook",
            shape=(self.num_codes, self.code_dim),
            initializer=keras.initializers.RandomUniform(-1.0, 1.0),
            trainable=not use_ema,
        )
        if use_ema:
            self.ema_counts = self.add_weight(
                name="ema_counts",
                shape=(self.num_codes,),
                initializer="ones",
                trainable=False,
            )
            self.ema_sums = self.add_weight(
                name="ema_sums",
                shape=(self.num_codes, self.code_dim),
                initializer="zeros",
                trainable=False,
            )
            self._ema_started = self.add_weight(
                name="ema_started", shape=(), initializer="zeros", trainable=False
            )

    def distances(self, flat):
        """Squared distances `(N, K)` of flat latents `(N, D)` to every code."""
        codebook = ops.cast(self.codebook, "float32")
        return (
            ops.sum(ops.square(flat), axis=-1, keepdims=True)
            - 2.0 * ops.matmul(flat, ops.transpose(codebook))
            + ops.sum(ops.square(codebook), axis=-1)[None, :]
        )

    def lookup(self, codes):
        """Code vectors `(..., code_dim)` of int indices `(...)`."""
        return ops.take(self.codebook, ops.cast(codes, "int32"), axis=0)

    def call(self, inputs, training=False):
        z = ops.cast(inputs, "float32")
        flat = ops.reshape(z, (-1, self.code_dim))
        distances = self.distances(ops.stop_gradient(flat))
        flat_codes = ops.cast(ops.argmin(distances, axis=-1), "int32")
        if training and self.ema_decay is not None:
            self._ema_update(ops.stop_gradient(flat), flat_codes, distances)
        codes = ops.reshape(flat_codes, ops.shape(z)[:-1])
        quantized = ops.cast(self.lookup(codes), self.compute_dtype)
        inputs = ops.cast(inputs, self.compute_dtype)
        straight_through = inputs + ops.stop_gradient(quantized - inputs)
        return {
            "quantized": quantized,
            "straight_through": straight_through,
            "codes": codes,
        }

    def _ema_update(self, flat, codes, distances):
        decay = self.ema_decay
        one_hot = ops.one_hot(codes, self.num_codes, dtype="float32")  # (N, K)
        counts = ops.sum(one_hot, axis=0)
        sums = ops.matmul(ops.transpose(one_hot), flat)
        # The first update replaces the initial state instead of averaging it.
        decay = ops.convert_to_tensor(self._ema_started) * decay
        old_codebook = ops.convert_to_tensor(self.codebook)
        ema_counts = (
            decay * ops.convert_to_tensor(self.ema_counts) + (1.0 - decay) * counts
        )
        ema_sums = decay * ops.convert_to_tensor(self.ema_sums) + (1.0 - decay) * sums
        total = ops.sum(ema_counts)
        smoothed = (
            (ema_counts + self.epsilon)
            / (total + self.num_codes * self.epsilon)
            * total
        )
        codebook = ema_sums / smoothed[:, None]
        # Untouched codes keep their vector until they are restarted.
        used = ops.greater(ema_counts, 1e-12)
        codebook = ops.where(used[:, None], codebook, old_codebook)
        if self.dead_code_threshold > 0:
            dead = ops.less(ema_counts, self.dead_code_threshold)
            # The j-th dead code takes the j-th worst-quantised latent.
            error = ops.min(distances, axis=-1)
            order = ops.argsort(-error)
            rank = ops.cumsum(ops.cast(dead, "int32")) - 1
            n = ops.shape(flat)[0]
            pick = ops.take(order, ops.mod(ops.maximum(rank, 0), n))
            fresh = ops.take(flat, pick, axis=0)
            codebook = ops.where(dead[:, None], fresh, codebook)
            ema_sums = ops.where(dead[:, None], fresh, ema_sums)
            ema_counts = ops.where(dead, 1.0, ema_counts)
        self.ema_counts.assign(ema_counts)
        self.ema_sums.assign(ema_sums)
        self.codebook.assign(codebook)
        self._ema_started.assign(1.0)

    def compute_output_spec(self, inputs, training=False):
        return {
            "quantized": keras.KerasTensor(inputs.shape, dtype=self.compute_dtype),
            "straight_through": keras.KerasTensor(
                inputs.shape, dtype=self.compute_dtype
            ),
            "codes": keras.KerasTensor(inputs.shape[:-1], dtype="int32"),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_codes": self.num_codes,
                "code_dim": self.code_dim,
                "ema_decay": self.ema_decay,
                "dead_code_threshold": self.dead_code_threshold,
                "epsilon": self.epsilon,
            }
        )
        return config
