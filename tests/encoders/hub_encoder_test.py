import os

import keras
import numpy as np
import pytest

from keras_mm.encoders import HubEncoder
from keras_mm.testing import TestCase
from tests.encoders.encoder_checks import (
    assert_distinct_scopes,
    assert_nested_round_trip,
    forward,
    to_numpy,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # Tiny random backbones; no download.

# Right-padded ids; the largest id (49) ends each text, as CLIP's end token does.
IDS = np.array([[3, 4, 5, 49, 0, 0], [7, 8, 9, 10, 49, 0]], "int32")
LENGTHS = (4, 5)


def tiny_bert():
    import keras_hub

    return keras_hub.models.BertBackbone(
        vocabulary_size=50,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=8,
    )


def tiny_vit():
    import keras_hub

    return keras_hub.models.ViTBackbone(
        image_shape=(8, 8, 3),
        patch_size=4,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        mlp_dim=16,
    )


def tiny_clip_vision():
    import keras_hub

    return keras_hub.models.CLIPVisionEncoder(
        patch_size=4,
        hidden_dim=8,
        num_layers=1,
        num_heads=2,
        intermediate_dim=16,
        image_shape=(8, 8, 3),
    )


def tiny_clip_text():
    import keras_hub

    return keras_hub.models.CLIPTextEncoder(
        vocabulary_size=50,
        embedding_dim=8,
        hidden_dim=8,
        num_layers=1,
        num_heads=2,
        intermediate_dim=16,
        max_sequence_length=6,
    )


def images(batch=2, seed=0):
    return np.random.default_rng(seed).random((batch, 8, 8, 3)).astype("float32")


class HubEncoderTest(TestCase):
    def test_vision_backbones(self):
        x = images()
        for build in (tiny_vit, tiny_clip_vision):
            backbone = build()
            encoder = HubEncoder(backbone, output_mode="both")
            self.assertIs(encoder.backbone, backbone)
            self.assertEqual(encoder.pooling, "first")  # the class token
            out = forward(encoder, x)
            sequence = out["sequence_output"]
            self.assertEqual(sequence.shape, (2, 5, 8))
            self.assertAllClose(out["pooled_output"], sequence[:, 0], atol=1e-6)
            symbolic = encoder({"images": keras.Input((8, 8, 3))})
            self.assertEqual(tuple(symbolic["pooled_output"].shape), (None, 8))
        mean = HubEncoder(backbone, pooling="mean")
        self.assertAllClose(forward(mean, x), sequence.mean(1), atol=1e-5)

    def test_bert_pooled_output_and_padding_mask(self):
        backbone = tiny_bert()
        encoder = HubEncoder(backbone)
        self.assertEqual(encoder.pooling, "backbone")  # every BERT weight trains
        reference = forward(
            backbone,
            {
                "token_ids": IDS,
                "segment_ids": np.zeros_like(IDS),
                "padding_mask": (IDS != 0).astype("int32"),
            },
        )["pooled_output"]
        self.assertAllClose(forward(encoder, {"token_ids": IDS}), reference, atol=1e-6)
        # The padding mask reaches BERT's attention: padding changes nothing.
        mean = HubEncoder(backbone, pooling="mean")
        padded = forward(mean, IDS)
        for row, length in enumerate(LENGTHS):
            alone = forward(mean, IDS[row : row + 1, :length])
            self.assertAllClose(padded[row], alone[0], atol=1e-5)
        unmasked = forward(mean, {"token_ids": IDS, "padding_mask": np.ones_like(IDS)})
        self.assertGreater(np.abs(unmasked - padded).max(), 1e-3)
        # Another padding id, declared: the same derived mask.
        other = HubEncoder(backbone, pooling="mean", pad_token_id=2)
        self.assertAllClose(
            forward(other, np.where(IDS == 0, 2, IDS)), padded, atol=1e-6
        )

    def test_clip_text_pools_the_end_token(self):
        backbone = tiny_clip_text()
        encoder = HubEncoder(backbone, output_mode="both")
        self.assertEqual(encoder.pooling, "argmax")
        out = forward(encoder, IDS)
        sequence = forward(backbone, {"token_ids": IDS})
        self.assertAllClose(out["sequence_output"], sequence, atol=1e-6)
        self.assertAllClose(out["pooled_output"], sequence[[0, 1], [3, 4]], atol=1e-6)
        last = HubEncoder(backbone, pooling="last")
        self.assertAllClose(forward(last, IDS), sequence[[0, 1], [3, 4]], atol=1e-6)

    def test_nested_encoders_distinct_paths_and_saving(self):
        # Two keras-hub CLIP text encoders share every variable path unless
        # wrapped; wrapped, they nest, save and load.
        first, second = tiny_clip_text(), tiny_clip_text()
        raw_paths = {v.path for v in first.weights} & {v.path for v in second.weights}
        assert_distinct_scopes(self, HubEncoder(first), HubEncoder(second))
        self.assertTrue(raw_paths)  # the situation the wrapper exists for
        assert_nested_round_trip(
            self, lambda: HubEncoder(tiny_clip_text()), {"token_ids": IDS}
        )

    def test_config_round_trip_and_fit(self):
        for build in (tiny_bert, tiny_vit):
            encoder = HubEncoder(build())
            config = encoder.get_config()
            revived = HubEncoder.from_config(config)
            self.assertEqual(revived.get_config()["pooling"], config["pooling"])
            self.assertEqual(type(revived.backbone), type(encoder.backbone))
            serialized = keras.saving.serialize_keras_object(encoder)
            self.assertEqual(serialized["registered_name"], "keras_mm>HubEncoder")
        encoder = HubEncoder(tiny_vit())
        encoder.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        before = [np.array(w) for w in to_numpy(encoder.trainable_weights)]
        target = np.random.default_rng(1).normal(size=(2, 8)).astype("float32")
        encoder.fit(images(), target, batch_size=2, epochs=1, verbose=0)
        after = to_numpy(encoder.trainable_weights)
        unchanged = [
            v.path
            for v, b, a in zip(encoder.trainable_weights, before, after)
            if np.allclose(b, a)
        ]
        # Only the attention key bias, whose gradient is exactly zero (softmax is
        # shift-invariant), may stay put: the backbone itself trains.
        self.assertTrue(all("key" in p for p in unchanged), unchanged)

    def test_bad_inputs(self):
        vit = tiny_vit()
        vision = HubEncoder(vit)
        with pytest.raises(ValueError, match=r"images.*\(None, 8, 8, 3\).*\(2, 8, 8\)"):
            vision(np.ones((2, 8, 8)))
        with pytest.raises(ValueError, match="key 'images'"):
            vision({"pixels": images()})
        text = HubEncoder(tiny_bert())
        with pytest.raises(ValueError, match=r"token_ids.*<= 8.*\(2, 9\)"):
            text(np.ones((2, 9), "int32"))
        with pytest.raises(ValueError, match="key 'token_ids'"):
            text({"ids": IDS})
        with pytest.raises(ValueError, match="must be a keras.Model"):
            HubEncoder(keras.layers.Dense(3))
        with pytest.raises(ValueError, match="pooling"):
            HubEncoder(vit, pooling="cls")
        with pytest.raises(ValueError, match="argmax"):
            HubEncoder(vit, pooling="argmax")
        inputs = keras.Input((4,))
        vectors = keras.Model(inputs, keras.layers.Dense(3)(inputs))
        with pytest.raises(ValueError, match="sequence output"):
            HubEncoder(vectors, output_mode="sequence")
        with pytest.raises(ValueError, match="use pooling='backbone'"):
            HubEncoder(vectors, pooling="mean")
        self.assertEqual(HubEncoder(vectors).pooling, "backbone")
        two = [keras.Input((4,)), keras.Input((4,))]
        with pytest.raises(ValueError, match="one tensor input or a dict"):
            HubEncoder(keras.Model(two, keras.layers.Add()(two)))
