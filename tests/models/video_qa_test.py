"""VQAModel on videos (VideoEncoder): inputs, saving and bad input, tiny models.

The learning claim (on `load_moving_shapes_videos`, held-out accuracy beats the
question-only prior by 0.25 and direction questions beat their own prior by 0.25)
is asserted by the video section of notebooks/11_vqa.ipynb, which CI executes
under every backend (tests/notebooks_test.py).
"""

import numpy as np

from keras_mm.encoders import ImageEncoder, TextEncoder
from keras_mm.encoders.video_encoder import VideoEncoder
from keras_mm.models.vqa import VQAModel
from keras_mm.testing.test_case import TestCase
from tests.models.application_test_utils import (
    eager_round_trip,
)


def _text_encoder(vocabulary_size, length, width=16):
    return TextEncoder(
        vocabulary_size=vocabulary_size,
        max_sequence_length=length,
        hidden_dim=width,
        num_layers=1,
        num_heads=2,
        intermediate_dim=2 * width,
        output_mode="both",
    )


def _video_qa(num_frames=3, fusion="cross_attention"):
    frames = ImageEncoder(
        image_shape=(16, 16, 3),
        patch_size=8,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        intermediate_dim=32,
        pooling="mean",
        use_class_token=False,
    )
    video = VideoEncoder(frames, num_frames=num_frames, output_mode="both")
    return VQAModel(
        video,
        _text_encoder(20, 6),
        num_answers=6,
        answer_vocabulary=["left", "right", "up", "down", "red", "blue"],
        fusion=fusion,
    )


def _batch(n=4, num_frames=3, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, 20, size=(n, 6)).astype("int32")
    ids[:, 5:] = 0
    return {
        "videos": rng.uniform(size=(n, num_frames, 16, 16, 3)).astype("float32"),
        "token_ids": ids,
        "padding_mask": ids > 0,
    }


class VideoQATest(TestCase):
    def test_video_qa_predicts_and_round_trips(self):
        x = _batch()
        model = _video_qa(fusion="concat")
        self.assertEqual(sorted(model.input), ["padding_mask", "token_ids", "videos"])
        self.assertEqual(model.visual_key, "videos")
        self.assertEqual(tuple(model(x)["logits"].shape), (4, 6))
        restored = eager_round_trip(self, _video_qa(), x)
        self.assertIsInstance(restored.image_encoder, VideoEncoder)
        self.assertIsInstance(restored.image_encoder.frame_encoder, ImageEncoder)

    def test_wrong_frame_count_and_bad_inputs(self):
        model = _video_qa(num_frames=3)
        with self.assertRaisesRegex(
            ValueError, "num_frames=3.*Received: videos shape=\\(4, 2, 16, 16, 3\\)"
        ):
            model(_batch(num_frames=2))
        x = _batch()
        with self.assertRaisesRegex(ValueError, "same batch size.*videos shape=\\(2"):
            model(dict(x, videos=x["videos"][:2]))
        with self.assertRaisesRegex(ValueError, "missing the key.*videos"):
            model({k: v for k, v in x.items() if k != "videos"})
        empty = dict(x, token_ids=np.zeros_like(x["token_ids"]))
        empty["padding_mask"] = empty["token_ids"] > 0
        with self.assertRaisesRegex(ValueError, "token_ids"):
            model(empty)
