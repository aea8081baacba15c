import math

import keras

from keras_mm.api_export import keras_mm_export
from keras_mm.encoders import HubEncoder


def check_epsilon(layer_norm_epsilon):
    if layer_norm_epsilon is None:
        return None
    try:
        value = float(layer_norm_epsilon)
    except (TypeError, ValueError):
        value = float("nan")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(
            "`layer_norm_epsilon` must be None or a finite number > 0. Received: "
            f"layer_norm_epsilon={layer_norm_epsilon!r}"
        )
    return value


def set_layer_norm_epsilon(model, epsilon):
    """Set `epsilon` on every `LayerNormalization` inside `model`; return the count."""
    count = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.LayerNormalization):
            layer.epsilon = epsilon
            count += 1
    return count


@keras_mm_export("keras_mm.pretrained.ConvertedHubEncoder")
class ConvertedHubEncoder(HubEncoder):
    """A `HubEncoder` whose backbone uses another framework's layer-norm epsilon.

    keras-hub's CLIP and SigLIP encoders are the architectures of Hugging Face's
    `CLIPModel` and `SiglipModel`, except for a few hard-coded layer-norm epsilons
    (keras-hub's `CLIPTextEncoder` ends with `epsilon=1e-6`; Hugging Face uses the
    config's `layer_norm_eps`, 1e-5, everywhere). With small activations the
    difference is far above 1e-5, so checkpoints converted from Hugging Face wrap
    their keras-hub backbone in this encoder: it sets `layer_norm_epsilon` on
    every `keras.layers.LayerNormalization` of the backbone, and does so again
    when a saved model is loaded (the epsilon is part of this layer's config, not
    of the backbone's). Everything else is `keras_mm.encoders.HubEncoder`.

    Args:
        backbone: a functional `keras.Model`, e.g. a keras-hub
            `CLIPVisionEncoder` holding converted weights.
        layer_norm_epsilon: float or None. Epsilon of every layer normalization
            in `backbone`; None leaves the backbone unchanged.
        pooling: see `HubEncoder` (None: automatic).
        output_mode: `"pooled"`, `"sequence"` or `"both"`.
        name: str or None.
        **kwargs: other `keras.Model` arguments (`trainable`).

    Call arguments:
        inputs: as `HubEncoder`: images, or `{"token_ids", "padding_mask"}`.
        training: bool.

    Returns:
        As `HubEncoder`: `(batch, d)` pooled features by default.

    Example:

    >>> import numpy as np, keras_hub
    >>> vision = keras_hub.models.CLIPVisionEncoder(patch_size=4, hidden_dim=8,
    ...     num_layers=1, num_heads=2, intermediate_dim=16, image_shape=(8, 8, 3))
    >>> encoder = ConvertedHubEncoder(vision, layer_norm_epsilon=1e-5)
    >>> tuple(encoder(np.zeros((2, 8, 8, 3))).shape)
    (2, 8)

    Reference:
        Hugging Face `transformers` CLIP configuration, `layer_norm_eps`.
    """

    def __init__(
        self,
        backbone,
        layer_norm_epsilon=None,
        pooling=None,
        output_mode="pooled",
        name=None,
        **kwargs,
    ):
        layer_norm_epsilon = check_epsilon(layer_norm_epsilon)
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        if layer_norm_epsilon is not None and isinstance(backbone, keras.Model):
            if not set_layer_norm_epsilon(backbone, layer_norm_epsilon):
                raise ValueError(
                    "`layer_norm_epsilon` was given but `backbone` has no "
                    "LayerNormalization layer. Received: backbone="
                    f"{backbone.name!r}"
                )
        super().__init__(
            backbone, pooling=pooling, output_mode=output_mode, name=name, **kwargs
        )
        self.layer_norm_epsilon = layer_norm_epsilon

    def get_config(self):
        config = super().get_config()
        config["layer_norm_epsilon"] = self.layer_norm_epsilon
        return config
