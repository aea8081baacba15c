"""Model families the CLI can train, built from a run configuration."""

import keras

from keras_mm.encoders import ConvImageEncoder, ImageEncoder, TextEncoder
from keras_mm.models import CLIP


def conv_image_encoder(image_shape, width):
    """The small CNN tower: on the 32x32 shapes data it learns within a few epochs."""
    return ConvImageEncoder(
        image_shape=image_shape, hidden_dim=width, name="image_encoder"
    )


def vit_image_encoder(image_shape, width):
    patch = 4 if image_shape[0] <= 32 else 8
    return ImageEncoder(
        image_shape=image_shape,
        patch_size=patch,
        hidden_dim=width,
        num_layers=2,
        num_heads=4,
        intermediate_dim=2 * width,
    )


def text_encoder(vocabulary_size, sequence_length, width):
    return TextEncoder(
        vocabulary_size=vocabulary_size,
        max_sequence_length=sequence_length,
        hidden_dim=width,
        num_layers=1,
        num_heads=4 if width % 4 == 0 else 1,
        intermediate_dim=2 * width,
    )


def build_clip(config, image_shape, vocabulary_size, sequence_length):
    width = config["width"]
    if config["image_encoder"] == "vit":
        image_encoder = vit_image_encoder(image_shape, width)
    else:
        image_encoder = conv_image_encoder(image_shape, width)
    return CLIP(
        image_encoder,
        text_encoder(vocabulary_size, sequence_length, width),
        embed_dim=config["embed_dim"],
        loss=config["loss"],
        name="clip",
    )


FAMILY_BUILDERS = {"clip": build_clip}


def make_optimizer(config, steps_per_epoch):
    """AdamW with the run's learning rate schedule (a pure function of the step).

    `"cosine"`: linear warm-up over half an epoch to `learning_rate`, then a
    cosine decay to 0 at the last step of `epochs`. `"constant"`: a fixed rate.
    Resuming rebuilds the same schedule from the configuration, and the step
    count restored with the optimizer state continues it exactly.
    """
    rate = config["learning_rate"]
    if config["schedule"] == "cosine":
        total = max(steps_per_epoch * config["epochs"], 1)
        warmup = min(max(steps_per_epoch // 2, 1), total - 1) if total > 1 else 0
        rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else rate,
            decay_steps=max(total - warmup, 1),
            alpha=0.0,
            warmup_target=rate if warmup else None,
            warmup_steps=warmup,
        )
    return keras.optimizers.AdamW(rate)


def build_model(config, image_shape, vocabulary_size, sequence_length):
    """A new, uncompiled model of `config["family"]`."""
    return FAMILY_BUILDERS[config["family"]](
        config, image_shape, vocabulary_size, sequence_length
    )
