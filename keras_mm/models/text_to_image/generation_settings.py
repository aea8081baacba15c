"""Checks of `TextToImage.generate`'s sampling settings (clear `ValueError`s)."""

import numpy as np


def is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number_in(value, low, high):
    """A real number (not a bool) with `low <= value < high`."""
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and low <= value < high
    )


def check_generation_settings(
    model, num_samples, temperature, top_k, top_p, keep, rerank, guidance_scale
):
    """Validate `TextToImage.generate`'s settings; returns `keep` resolved."""
    name = "TextToImage.generate"
    if guidance_scale is not None:
        if not is_number_in(guidance_scale, 0, float("inf")):
            raise ValueError(
                f"{name}: `guidance_scale` must be None or a finite number "
                f">= 0. Received: guidance_scale={guidance_scale!r}"
            )
        if not model.prompt_dropout:
            raise ValueError(
                f"{name}: `guidance_scale` needs a model trained with "
                "`prompt_dropout` > 0 (it never saw the empty prompt). "
                f"Received: guidance_scale={guidance_scale!r} for a model with "
                "prompt_dropout=0"
            )
    if not is_int(num_samples) or num_samples < 1:
        raise ValueError(
            f"{name}: `num_samples` must be an integer >= 1. Received: "
            f"num_samples={num_samples!r}"
        )
    if not is_number_in(temperature, 0, float("inf")):
        raise ValueError(
            f"{name}: `temperature` must be a finite number >= 0 (0 = greedy). "
            f"Received: temperature={temperature!r}"
        )
    num_codes = model.image_tokenizer.num_codes
    if top_k is not None and (not is_int(top_k) or not 1 <= top_k <= num_codes):
        raise ValueError(
            f"{name}: `top_k` must be None or an integer in [1, num_codes="
            f"{num_codes}]. Received: top_k={top_k!r}"
        )
    if top_p is not None and (
        isinstance(top_p, bool)
        or not isinstance(top_p, (int, float))
        or not 0 < top_p <= 1
    ):
        raise ValueError(
            f"{name}: `top_p` must be None or a number in (0, 1]. Received: "
            f"top_p={top_p!r}"
        )
    if keep is None:
        keep = 1 if rerank is not None else num_samples
    if not is_int(keep) or not 1 <= keep <= num_samples:
        raise ValueError(
            f"{name}: `keep` must be an integer in [1, num_samples="
            f"{num_samples}]. Received: keep={keep!r}"
        )
    if rerank is not None and not (
        hasattr(rerank, "encode_image") and hasattr(rerank, "encode_text")
    ):
        raise ValueError(
            f"{name}: `rerank` must be None or a CLIP model (with "
            f"`encode_image` and `encode_text`). Received: rerank of type "
            f"{type(rerank).__name__}"
        )
    return keep
