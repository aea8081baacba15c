"""Model families the CLI can train, built from a run configuration."""

import keras

from keras_mm.cli.parser import UsageError
from keras_mm.encoders import ConvImageEncoder, ImageEncoder, TextEncoder
from keras_mm.models import CLIP


def conv_image_encoder(image_shape, width):
    """The small CNN tower: on the 32x32 shapes data it learns within a few epochs."""
    return ConvImageEncoder(
        image_shape=image_shape, hidden_dim=width, name="image_encoder"
    )


VIT_HEADS = 4


def vit_patch_size(image_size):
    return 4 if image_size <= 32 else 8


def check_model_options(config):
    """Refuse options the model cannot be built with, naming the CLI flags.

    Runs before any data is read, so a bad combination fails at once.
    """
    if config["image_encoder"] != "vit":
        return
    width, size = config["width"], config["dataset"]["image_size"]
    if width % VIT_HEADS:
        raise UsageError(
            f"--width {width} must be a multiple of {VIT_HEADS} with --image-encoder "
            f"vit (its attention heads)"
        )
    patch = vit_patch_size(size)
    if size % patch:
        raise UsageError(
            f"--image-size {size} must be a multiple of {patch} with --image-encoder "
            f"vit (its patch size for images {'up to' if patch == 4 else 'over'} "
            "32 pixels)"
        )


def vit_image_encoder(image_shape, width):
    return ImageEncoder(
        image_shape=image_shape,
        patch_size=vit_patch_size(image_shape[0]),
        hidden_dim=width,
        num_layers=2,
        num_heads=VIT_HEADS,
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


def make_optimizer(config, steps_per_epoch, model=None):
    """AdamW with the run's learning rate schedule (a pure function of the step).

    `"cosine"`: linear warm-up over half an epoch to `learning_rate`, then a
    cosine decay to 0 at the last step of `epochs`. `"constant"`: a fixed rate.
    Resuming rebuilds the same schedule from the configuration, and the step
    count restored with the optimizer state continues it exactly.

    With `model` and an `image_lr_multiplier` / `text_lr_multiplier` other than
    1, the towers get their own scaled copy of the schedule
    (`keras_mm.pretrained.learning_rate_multipliers`).
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
    optimizer = keras.optimizers.AdamW(rate)
    multipliers = {
        f"{tower}_encoder": config.get(f"{tower}_lr_multiplier", 1.0)
        for tower in ("image", "text")
    }
    if config.get("lock_image"):
        multipliers.pop("image_encoder")  # frozen: no variables to scale
    multipliers = {k: v for k, v in multipliers.items() if v != 1.0}
    if model is None or not multipliers:
        return optimizer
    from keras_mm.pretrained import learning_rate_multipliers

    return learning_rate_multipliers(model, multipliers, optimizer)


def prepare_model(model, config):
    """Apply the run's `--lock-image` and `--tile-size` to a model (before compile)."""
    if config.get("lock_image"):
        model.image_encoder.trainable = False
    if config.get("tile_size"):
        model.tile_size = config["tile_size"]
    return model


def build_model(config, image_shape, vocabulary_size, sequence_length):
    """A new, uncompiled model of `config["family"]`."""
    return FAMILY_BUILDERS[config["family"]](
        config, image_shape, vocabulary_size, sequence_length
    )
