"""Class embeddings for zero-shot classification from prompt embeddings."""

from keras_mm.api_export import keras_mm_export
from keras_mm.metrics._utils import check_finite, l2_normalize, to_numpy


@keras_mm_export("keras_mm.metrics.zero_shot_classifier")
def zero_shot_classifier(prompt_embeddings):
    """Average prompt embeddings per class and renormalise (CLIP's ensembling).

    Each prompt embedding is L2-normalised, the `P` prompts of a class are
    averaged and the mean is L2-normalised again (Radford et al., 2021, section
    3.1.4, "prompt ensembling").

    Args:
        prompt_embeddings: `(C, P, D)` (P prompts per class) or `(C, D)`.

    Returns:
        A float32 NumPy array `(C, D)` of unit rows; `image_embeddings @ result.T`
        gives the zero-shot logits.
    """
    x = to_numpy(prompt_embeddings, "prompt_embeddings")
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(
            "`prompt_embeddings` must be (num_classes, num_prompts, dim) or "
            f"(num_classes, dim). Received: shape={x.shape}"
        )
    check_finite(x, "prompt_embeddings")
    return l2_normalize(l2_normalize(x).mean(axis=1)).astype("float32")
