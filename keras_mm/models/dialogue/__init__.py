"""Image-grounded multi-turn dialogue: `DialogueModel` (ranking and generation)."""

from keras_mm.models.dialogue.dialogue_model import DialogueModel

__all__ = ["DialogueModel"]
