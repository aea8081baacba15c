"""Token ids of zero-shot class prompts ("a photo of a red circle", ...)."""

import re

from keras_mm.api_export import keras_mm_export
from keras_mm.data._text import check_texts

DEFAULT_TEMPLATES = (
    "a photo of a {}",
    "a picture of a {}",
    "an image of a {}",
    "a {}",
)

_ARTICLE_RE = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")


def fix_articles(text):
    """Turn "a orange" into "an orange" (and "an red" is left to the template)."""
    return _ARTICLE_RE.sub(r"\1n ", text)


@keras_mm_export("keras_mm.data.make_class_prompts")
def make_class_prompts(
    class_names, vocabulary, sequence_length, templates=DEFAULT_TEMPLATES
):
    """Encode one prompt per (class, template) for zero-shot classification.

    CLIP's recipe (Radford et al., 2021, section 3.1.4): fill several templates with
    each class name, embed all prompts, average the embeddings per class and
    renormalise (`keras_mm.metrics.zero_shot_classifier` does the averaging).
    "a" before a vowel becomes "an". Encoding is `keras_mm.data.encode_texts`.

    Args:
        class_names: list of str, e.g. `["red circle", ...]`.
        vocabulary: list of str, the text model's vocabulary.
        sequence_length: int.
        templates: list of str with one `{}` each.

    Returns:
        A dict `{"token_ids": (C, P, T) int32, "padding_mask": (C, P, T) bool,
        "prompts": list of C lists of P str}` with C classes, P templates and
        T = `sequence_length`.
    """
    from keras_mm.data.encode_texts import encode_texts

    class_names = check_texts(class_names, "class_names")
    templates = check_texts(templates, "templates")
    if not class_names or not templates:
        raise ValueError(
            "`class_names` and `templates` must be non-empty. Received: "
            f"{len(class_names)} class names and {len(templates)} templates"
        )
    for t in templates:
        if t.count("{}") != 1:
            raise ValueError(
                f"Every template must hold exactly one '{{}}'. Received: {t!r}"
            )
    prompts = [
        [fix_articles(t.format(name)) for t in templates] for name in class_names
    ]
    flat = [p for row in prompts for p in row]
    enc = encode_texts(flat, vocabulary, sequence_length)
    shape = (len(class_names), len(templates), sequence_length)
    return {
        "token_ids": enc["token_ids"].reshape(shape),
        "padding_mask": enc["padding_mask"].reshape(shape),
        "prompts": prompts,
    }


def prompt_words(class_names, templates=DEFAULT_TEMPLATES):
    """All prompt texts, for building a vocabulary that covers them."""
    return [fix_articles(t.format(n)) for n in class_names for t in templates]


__all__ = ["make_class_prompts", "DEFAULT_TEMPLATES"]
