import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mm")
class ModalityDropout(keras.layers.Layer):
    """Randomly hides one modality per example during training.

    With probability `rate`, an example loses one uniformly chosen modality of
    those present in `modality_mask` (never its last present one), so the model
    must reconstruct it from the others (cross-modal reconstruction). Identity at
    inference.

    Call arguments:
        modality_mask: float `(batch, n)`, 1 = present.
        training: bool.

    Returns:
        The new float32 `(batch, n)` mask.
    """

    def __init__(self, rate=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) <= 1.0:
            raise ValueError(f"`rate` must be in [0, 1]. Received: rate={rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="modality_dropout")

    def call(self, modality_mask, training=None):
        mask = ops.cast(modality_mask, "float32")
        if not training or self.rate == 0.0:
            return mask
        batch, n = ops.shape(mask)[0], mask.shape[-1]
        drop_row = ops.cast(
            keras.random.uniform((batch, 1), seed=self.seed_generator) < self.rate,
            "float32",
        )
        # Choose uniformly among the present modalities (Gumbel-max over log mask).
        scores = keras.random.uniform((batch, n), seed=self.seed_generator)
        scores = ops.where(mask > 0, scores, -1.0)
        chosen = ops.one_hot(ops.argmax(scores, axis=-1), n, dtype="float32")
        dropped = mask * (1.0 - chosen * drop_row)
        keep_all = ops.sum(dropped, axis=-1, keepdims=True) < 1.0
        return ops.where(keep_all, mask, dropped)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config


def default_decoder(code_dim, output_shape, hidden_dim, name, dtype=None):
    """An MLP decoder `(batch, code_dim) -> (batch, *output_shape)`."""
    with keras.name_scope(name):
        code = keras.Input((code_dim,), name="code")
        x = keras.layers.Dense(
            hidden_dim, activation="gelu", dtype=dtype, name="hidden"
        )(code)
        x = keras.layers.Dense(
            math.prod(output_shape), dtype=dtype, name="reconstruction"
        )(x)
        x = keras.layers.Reshape(tuple(output_shape), dtype=dtype, name="reshape")(x)
    return keras.Model(code, x, name=name)
