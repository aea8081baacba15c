"""Classifier-free guidance for `TextToImage` (Ho & Salimans, 2022).

Training replaces the prompt of a random fraction of the examples with the
empty prompt (every text token `[PAD]`, id 0), so the one transformer learns
both `p(c_i | text, c_<i)` and the unconditional `p(c_i | c_<i)`. Sampling
then draws from the guided logits (eq. 6 of the paper, on logits)

    l_guided = l_empty + s * (l_text - l_empty)

where `s = 1` is plain conditional sampling and `s > 1` pushes each token
towards what the prompt, rather than images in general, makes likely.
"""

import keras
from keras import ops

from keras_mm.models.text_to_image.generation_settings import is_number_in


def check_prompt_dropout(rate):
    """`rate` as a float in [0, 1), else a `ValueError` naming `prompt_dropout`."""
    if not is_number_in(rate, 0.0, 1.0):
        raise ValueError(f"`prompt_dropout` must be in [0, 1). Received: {rate!r}")
    return float(rate)


@keras.saving.register_keras_serializable(package="keras_mm")
class PromptDropout(keras.layers.Layer):
    """Replace each row of `token_ids` by the empty prompt (all 0) with
    probability `rate` during training; the identity otherwise.

    Args:
        rate: float in [0, 1).
        seed: int or None.
        **kwargs: base layer arguments.
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_prompt_dropout(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, token_ids, training=False):
        token_ids = ops.cast(token_ids, "int32")
        if not training or self.rate == 0.0:
            return token_ids
        draw = keras.random.uniform(
            (ops.shape(token_ids)[0], 1), seed=self.seed_generator
        )
        return ops.where(ops.less(draw, self.rate), 0, token_ids)

    def compute_output_spec(self, token_ids, training=False):
        return keras.KerasTensor(token_ids.shape, "int32")

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config


def guide(logits, scale):
    """Guided logits from a batch stacked as `[with text ; empty prompt]`.

    Args:
        logits: `(2 * batch, K)` float, the first half conditioned on the
            prompts, the second on the empty prompt.
        scale: `(batch,)` float guidance scale `s`.

    Returns:
        `(batch, K)` float32 `l_empty + s * (l_text - l_empty)`.
    """
    conditional, unconditional = ops.split(ops.cast(logits, "float32"), 2, axis=0)
    scale = ops.cast(scale, "float32")[:, None]
    return unconditional + scale * (conditional - unconditional)
