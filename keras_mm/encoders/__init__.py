"""Small modality encoders (image, text, audio, action, video), a keras-hub adapter.

Each encoder is a functional `keras.Model` with a pooled `(batch, hidden_dim)`
output by default (`output_mode="sequence"` or `"both"` for token features).
"""

from keras_mm.encoders.action_encoder import ActionEncoder
from keras_mm.encoders.audio_encoder import AudioEncoder
from keras_mm.encoders.conv_image_encoder import ConvImageEncoder
from keras_mm.encoders.hub_encoder import HubEncoder
from keras_mm.encoders.image_encoder import ImageEncoder
from keras_mm.encoders.text_encoder import TextEncoder
from keras_mm.encoders.video_encoder import VideoEncoder

__all__ = [
    "ActionEncoder",
    "AudioEncoder",
    "ConvImageEncoder",
    "HubEncoder",
    "ImageEncoder",
    "TextEncoder",
    "VideoEncoder",
]
