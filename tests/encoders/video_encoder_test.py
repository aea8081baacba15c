import keras
import numpy as np
from keras import ops

from keras_mm.encoders import ImageEncoder
from keras_mm.encoders.video_encoder import VideoEncoder
from keras_mm.testing.test_case import TestCase
from tests.models.application_test_utils import cnn_frame_encoder, eager_round_trip

FRAMES = 3


def _frame_encoder(mode="pooled"):
    return ImageEncoder(
        image_shape=(16, 16, 3),
        patch_size=8,
        hidden_dim=8,
        num_layers=1,
        num_heads=2,
        intermediate_dim=16,
        pooling="mean",
        use_class_token=False,
        output_mode=mode,
    )


def _videos(n=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, FRAMES, 16, 16, 3)).astype("float32")


def _layer_norm(x, gamma, beta, epsilon):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * gamma + beta


class VideoEncoderTest(TestCase):
    def test_output_modes_shapes_and_config(self):
        for mode, frame_mode in (("pooled", "pooled"), ("sequence", "sequence")):
            encoder = VideoEncoder(
                _frame_encoder(frame_mode), num_frames=FRAMES, output_mode=mode
            )
            out = encoder(_videos())
            expected = (2, 8) if mode == "pooled" else (2, FRAMES, 8)
            self.assertEqual(tuple(out.shape), expected)
            config = encoder.get_config()
            revived = VideoEncoder.from_config(config)
            self.assertEqual(revived.get_config(), config)
        encoder = VideoEncoder(
            _frame_encoder("both"), num_frames=FRAMES, output_mode="both"
        )
        out = encoder({"videos": _videos()})
        self.assertEqual(tuple(out["pooled_output"].shape), (2, 8))
        self.assertEqual(tuple(out["sequence_output"].shape), (2, FRAMES, 8))
        self.assertEqual(encoder.hidden_dim, 8)
        self.assertEqual(
            tuple(
                encoder.compute_output_shape((None, FRAMES, 16, 16, 3))[
                    "sequence_output"
                ]
            ),
            (None, FRAMES, 8),
        )

    def test_matches_numpy_oracle_of_shared_frames_and_temporal_embedding(self):
        # With no temporal blocks: sequence = LN(f(frame_t) + p_t) and the pooled
        # output is its mean over frames; f is one shared frame encoder.
        frame_encoder = _frame_encoder()
        encoder = VideoEncoder(
            frame_encoder, num_frames=FRAMES, num_layers=0, output_mode="both"
        )
        rng = np.random.default_rng(1)
        embedding = encoder.get_layer("temporal_embedding")
        embedding.position_embeddings.assign(
            rng.normal(size=(FRAMES, 8)).astype("float32")
        )
        norm = encoder.get_layer("final_layer_norm")
        norm.gamma.assign(rng.uniform(0.5, 1.5, size=8).astype("float32"))
        norm.beta.assign(rng.normal(size=8).astype("float32"))
        videos = _videos(seed=2)
        out = encoder(videos)
        frames = np.stack(
            [ops.convert_to_numpy(frame_encoder(videos[:, t])) for t in range(FRAMES)],
            axis=1,
        )
        expected = _layer_norm(
            frames + ops.convert_to_numpy(embedding.position_embeddings)[None],
            ops.convert_to_numpy(norm.gamma),
            ops.convert_to_numpy(norm.beta),
            encoder.layer_norm_epsilon,
        )
        self.assertAllClose(out["sequence_output"], expected, atol=1e-5, rtol=1e-5)
        self.assertAllClose(
            out["pooled_output"], expected.mean(1), atol=1e-5, rtol=1e-5
        )

    def test_frame_order_matters(self):
        # The temporal position embedding makes a reversed clip encode differently
        # (a left-moving shape must not look like a right-moving one).
        for pooling in ("mean", "attention"):
            encoder = VideoEncoder(
                cnn_frame_encoder(16, name=f"frames_{pooling}"),
                num_frames=FRAMES,
                pooling=pooling,
            )
            rng = np.random.default_rng(0)
            embedding = encoder.get_layer("temporal_embedding")
            embedding.position_embeddings.assign(
                rng.normal(size=(FRAMES, 32)).astype("float32")
            )
            videos = _videos()
            forward = ops.convert_to_numpy(encoder(videos))
            backward = ops.convert_to_numpy(encoder(videos[:, ::-1]))
            self.assertGreater(np.abs(forward - backward).max(), 1e-3)

    def test_fit_trains_temporal_and_frame_weights(self):
        encoder = VideoEncoder(
            cnn_frame_encoder(16), num_frames=FRAMES, pooling="attention"
        )
        model = keras.Sequential([encoder, keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        frame_before = [ops.convert_to_numpy(w) for w in encoder.frame_encoder.weights]
        temporal = encoder.get_layer("temporal_embedding").position_embeddings
        temporal_before = ops.convert_to_numpy(temporal)
        model.fit(_videos(4), np.ones((4, 1)), epochs=1, batch_size=4, verbose=0)
        frame_after = [ops.convert_to_numpy(w) for w in encoder.frame_encoder.weights]
        self.assertTrue(
            any(not np.allclose(a, b) for a, b in zip(frame_before, frame_after))
        )
        self.assertFalse(np.allclose(temporal_before, ops.convert_to_numpy(temporal)))

    def test_keras_round_trip(self):
        encoder = VideoEncoder(
            _frame_encoder(), num_frames=FRAMES, pooling="attention", output_mode="both"
        )
        restored = eager_round_trip(self, encoder, _videos())
        self.assertIsInstance(restored, VideoEncoder)
        self.assertIsInstance(restored.frame_encoder, ImageEncoder)

    def test_mixed_precision(self):
        encoder = VideoEncoder(
            _frame_encoder(), num_frames=FRAMES, dtype="mixed_bfloat16"
        )
        out = encoder(_videos())
        self.assertEqual(keras.backend.standardize_dtype(out.dtype), "bfloat16")

    def test_wrong_frame_count_and_bad_inputs(self):
        encoder = VideoEncoder(_frame_encoder(), num_frames=FRAMES)
        with self.assertRaisesRegex(
            ValueError, "num_frames=3.*Received: videos shape=\\(2, 4, 16, 16, 3\\)"
        ):
            encoder(np.zeros((2, 4, 16, 16, 3), "float32"))
        with self.assertRaisesRegex(ValueError, "videos.*\\(2, 3, 8, 8, 3\\)"):
            encoder(np.zeros((2, 3, 8, 8, 3), "float32"))
        with self.assertRaisesRegex(ValueError, "videos.*\\(2, 16, 16, 3\\)"):
            encoder(np.zeros((2, 16, 16, 3), "float32"))
        with self.assertRaisesRegex(ValueError, "key 'videos'"):
            encoder({"images": np.zeros((2, 3, 16, 16, 3), "float32")})

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "frame_encoder"):
            VideoEncoder("vit", num_frames=3)
        with self.assertRaisesRegex(ValueError, "num_frames"):
            VideoEncoder(_frame_encoder(), num_frames=0)
        with self.assertRaisesRegex(ValueError, "num_heads"):
            VideoEncoder(_frame_encoder(), num_frames=3, num_heads=3)
        with self.assertRaisesRegex(ValueError, "pooling"):
            VideoEncoder(_frame_encoder(), num_frames=3, pooling="max")
        with self.assertRaisesRegex(ValueError, "num_frames"):
            VideoEncoder(_frame_encoder(), num_frames=1, pooling="attention")
