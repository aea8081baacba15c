import time

import keras
import numpy as np
import pytest

from keras_mm.data.moving_shapes_videos import load_moving_shapes_videos
from keras_mm.encoders import ImageEncoder, TextEncoder
from keras_mm.encoders.video_encoder import VideoEncoder
from keras_mm.models.vqa import VQAModel
from keras_mm.testing.test_case import TestCase
from tests.models.application_test_utils import (
    answer_prior_accuracy,
    cnn_frame_encoder,
    eager_answers,
    eager_round_trip,
    per_type_accuracy,
)

# Held-out video QA accuracy must beat the best question-only prior by this much
# (measured: about 0.55 over it), and motion questions, which no single frame
# answers, must beat their own prior (1/4) by MOTION_MARGIN.
MARGIN = 0.25
MOTION_MARGIN = 0.25


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
    @pytest.mark.large
    def test_learns_motion_questions_above_the_answer_prior(self):
        start = time.time()
        data = load_moving_shapes_videos(num_train=1500, num_test=400)
        train, test = data["train"], data["test"]
        video = VideoEncoder(
            cnn_frame_encoder(16),
            num_frames=data["num_frames"],
            num_layers=1,
            num_heads=2,
            output_mode="both",
        )
        model = VQAModel(
            video,
            _text_encoder(len(data["vocabulary"]), data["sequence_length"], 32),
            num_answers=len(data["answer_vocabulary"]),
            answer_vocabulary=data["answer_vocabulary"],
            fusion="cross_attention",
        )
        self.assertEqual(model.visual_key, "videos")
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        model.fit(
            train["inputs"], train["answers"], batch_size=64, epochs=12, verbose=0
        )
        predictions = eager_answers(model, test["inputs"])
        accuracy = float(np.mean(np.asarray(predictions) == test["answer_texts"]))
        prior, priors = answer_prior_accuracy(test)
        by_type = per_type_accuracy(predictions, test, data["question_types"])
        motion = test["question_types"] == data["question_types"].index("direction")
        motion_prior, _ = answer_prior_accuracy(
            {k: np.asarray(test[k])[motion] for k in ("answers", "questions")}
            | {"question_types": test["question_types"][motion]}
        )
        print(
            f"\nvideo QA [{keras.backend.backend()}] accuracy={accuracy:.3f} "
            f"prior={prior:.3f} {priors} by_type={by_type} motion_prior="
            f"{motion_prior:.3f} ({time.time() - start:.0f}s)"
        )
        self.assertGreater(accuracy, prior + MARGIN)
        self.assertGreater(by_type["direction"], motion_prior + MOTION_MARGIN)

    def test_video_qa_predicts_and_round_trips(self):
        x = _batch()
        model = _video_qa(fusion="concat")
        self.assertEqual(sorted(model.input), ["padding_mask", "token_ids", "videos"])
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
