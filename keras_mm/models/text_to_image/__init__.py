"""Text-to-image generation (DALL-E): `ImageTokenizer` and `TextToImage`."""

from keras_mm.models.text_to_image.image_tokenizer import ImageTokenizer
from keras_mm.models.text_to_image.text_to_image import TextToImage

__all__ = ["ImageTokenizer", "TextToImage"]
