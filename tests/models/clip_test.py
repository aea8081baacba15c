import os
import time

import keras
import numpy as np
import pytest

from keras_mm.models import CLIP
from keras_mm.testing.test_case import TestCase
from tests.models.model_test_utils import (
    NUM_CLASSES,
    image_encoder,
    run_in_backend,
    subset,
    synthetic_task,
    text_encoder,
)

KEYS = ("images", "token_ids", "padding_mask")


def _clip(**kwargs):
    return CLIP(image_encoder(), text_encoder(), embed_dim=16, **kwargs)


def _colliding_encoders():
    """Two encoders whose variables share paths ("proj/kernel", "out/kernel")."""

    def make(shape, dtype, name, embedding):
        inputs = keras.Input(shape, dtype=dtype, name="x")
        x = (
            keras.layers.Embedding(40, 8, name="proj")(inputs)
            if embedding
            else (keras.layers.Dense(8, name="proj")(keras.layers.Flatten()(inputs)))
        )
        x = keras.layers.Dense(8, activation="tanh", name="out")(x)
        if embedding:
            x = keras.layers.GlobalAveragePooling1D()(x)
        return keras.Model(inputs, x, name=name)

    return make((16, 16, 3), "float32", "enc_a", False), make(
        (6,), "int32", "enc_b", True
    )


def _small_cnn(width=8):
    images = keras.Input((32, 32, 3), name="images")
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(images)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(4 * width, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    return keras.Model(images, x, name="small_cnn")


class CLIPTest(TestCase):
    def test_fit_without_labels_halves_loss_evaluate_predict(self):
        x, _ = synthetic_task(128)
        x = subset(x, KEYS)
        model = CLIP(image_encoder(), text_encoder(), embed_dim=16)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        # encode_image builds (and compiles) its tower once; it is not tracked
        # as a layer of the model, and it sees the weights `fit` changes.
        layers, weights = len(model.layers), len(model.weights)
        untrained = model.encode_image(x["images"][:8])
        tower = model._encode_tower("image_embeddings")
        self.assertEqual((len(model.layers), len(model.weights)), (layers, weights))
        history = model.fit(x, batch_size=16, epochs=10, verbose=0)
        first, last = history.history["loss"][0], history.history["loss"][-1]
        self.assertLess(last, 0.5 * first, history.history["loss"])
        logs = model.evaluate(x, batch_size=16, verbose=0, return_dict=True)
        self.assertTrue(np.isfinite(logs["loss"]))
        out = model.predict(x, batch_size=32, verbose=0)
        self.assertEqual(out["image_embeddings"].shape, (128, 16))
        norms = np.linalg.norm(out["text_embeddings"], axis=-1)
        self.assertAllClose(norms, np.ones(128), atol=1e-5)
        # encode_* agree with the model outputs.
        self.assertAllClose(
            model.encode_image(x["images"]), out["image_embeddings"], atol=1e-5
        )
        self.assertIs(model._encode_tower("image_embeddings"), tower)
        self.assertGreater(np.abs(untrained - out["image_embeddings"][:8]).max(), 0.1)
        text = subset(x, ("token_ids", "padding_mask"))
        self.assertAllClose(model.encode_text(text), out["text_embeddings"], atol=1e-5)

        # Zero-shot from class prompts: two templates per class, averaged.
        token_ids = np.zeros((NUM_CLASSES, 2, 6), "int32")
        token_ids[:, :, 0] = 2 + np.arange(NUM_CLASSES)[:, None]
        token_ids[:, 0, 1:3] = NUM_CLASSES + 3
        token_ids[:, 1, 1:3] = NUM_CLASSES + 5
        prompts = {"token_ids": token_ids, "padding_mask": token_ids > 0}
        weights = model.build_zero_shot_weights(prompts)
        self.assertEqual(weights.shape, (NUM_CLASSES, 16))
        per_template = [
            model.encode_text({k: v[:, t] for k, v in prompts.items()}) for t in (0, 1)
        ]
        mean = (per_template[0] + per_template[1]) / 2
        mean /= np.linalg.norm(mean, axis=-1, keepdims=True)
        self.assertAllClose(weights, mean, atol=1e-5)
        x_test, y_test = synthetic_task(64, seed=7)
        probs = model.zero_shot_predict(x_test["images"], weights)
        self.assertEqual(probs.shape, (64, NUM_CLASSES))
        self.assertAllClose(probs.sum(-1), np.ones(64), atol=1e-5)
        self.assertGreater((probs.argmax(-1) == y_test).mean(), 0.5)

    def test_siglip_fit_halves_loss_and_group_labels(self):
        x, labels = synthetic_task(64)
        x = subset(x, KEYS)
        model = CLIP(image_encoder(), text_encoder(), embed_dim=16, loss="siglip")
        self.assertAllClose(model.logits_head.bias, -10.0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        history = model.fit(x, labels, batch_size=16, epochs=4, verbose=0)
        first, last = history.history["loss"][0], history.history["loss"][-1]
        self.assertLess(last, 0.5 * first, history.history["loss"])

    def test_loss_is_clip_loss_of_learned_logits(self):
        from keras_mm.losses import clip_loss

        x, _ = synthetic_task(8)
        x = subset(x, KEYS)
        model = _clip()
        model.logits_head.log_scale.assign(np.log(5.0))
        out = model(x)
        zi = keras.ops.convert_to_numpy(out["image_embeddings"])
        zt = keras.ops.convert_to_numpy(out["text_embeddings"])
        logits = 5.0 * zi @ zt.T

        # NumPy oracle of the symmetric InfoNCE loss (seed 4.1.2).
        def ce(z):
            z = z - z.max(1, keepdims=True)
            return -np.mean(np.diag(z) - np.log(np.exp(z).sum(1)))

        expected = 0.5 * (ce(logits) + ce(logits.T))
        loss = model.compute_loss(x, None, out, training=False)
        self.assertEqual(keras.backend.standardize_dtype(loss.dtype), "float32")
        self.assertAllClose(loss, expected, atol=1e-5)
        self.assertAllClose(clip_loss(logits), expected, atol=1e-5)

    def test_tile_size_gives_the_untiled_loss(self):
        # 10 samples, tiles of 4: the remainder strip is padded and masked.
        x, labels = synthetic_task(10)
        x = subset(x, KEYS)
        for loss in ("clip", "siglip"):
            naive = _clip(loss=loss)
            tiled = _clip(loss=loss, tile_size=4)
            tiled.set_weights(naive.get_weights())
            self.assertEqual(CLIP.from_config(tiled.get_config()).tile_size, 4)
            for y in (None, labels[:10]):
                expected = naive.compute_loss(x, y, naive(x), training=False)
                value = tiled.compute_loss(x, y, tiled(x), training=False)
                self.assertAllClose(value, expected, atol=1e-5)
        with self.assertRaisesRegex(ValueError, "tile_size"):
            _clip(tile_size=0)

    def test_config_and_saving_round_trip(self):
        x, _ = synthetic_task(8)
        x = subset(x, KEYS)
        model = _clip(projection_hidden_dim=8, loss="siglip")
        config = model.get_config()
        revived = CLIP.from_config(config)
        self.assertEqual(revived.get_config(), config)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        restored = self.run_model_saving_test(model, x)
        self.assertIsInstance(restored, CLIP)
        self.assertAllClose(restored.logits_head.bias, model.logits_head.bias)
        # The compile config comes back too: training resumes without compile().
        self.assertIsInstance(restored.optimizer, keras.optimizers.Adam)
        logs = restored.train_on_batch(x, return_dict=True)
        self.assertTrue(np.isfinite(logs["loss"]))

    def test_input_errors_name_key_and_shapes(self):
        x, _ = synthetic_task(8)
        x = subset(x, KEYS)
        model = _clip()
        cases = {
            "batch size": dict(x, images=x["images"][:5]),
            "missing": {"images": x["images"], "padding_mask": x["padding_mask"]},
            "rank": dict(x, token_ids=x["token_ids"][..., None]),
            "image shape": dict(x, images=np.zeros((8, 8, 8, 3), "float32")),
        }
        messages = {
            "batch size": ["images shape=(5, 16, 16, 3)", "token_ids shape=(8, 6)"],
            "missing": ["token_ids", "images shape=(8, 16, 16, 3)"],
            "rank": ["token_ids", "(8, 6, 1)"],
            "image shape": ["images", "(8, 8, 8, 3)"],
        }
        for case, bad in cases.items():
            for run in (
                lambda: model(bad),
                lambda: model.predict(bad, verbose=0),
            ):
                with self.assertRaises(ValueError) as ctx:
                    run()
                for fragment in messages[case]:
                    self.assertIn(fragment, str(ctx.exception), case)
        model.compile(optimizer="sgd")
        with self.assertRaisesRegex(ValueError, "token_ids"):
            model.fit(cases["missing"], epochs=1, verbose=0)
        with self.assertRaisesRegex(ValueError, "must be a dict"):
            model(x["images"])
        with self.assertRaisesRegex(ValueError, "takes no `loss`"):
            model.compile(optimizer="sgd", loss="mse")

    def test_mixed_bfloat16_training_keeps_float32_loss(self):
        keras.config.set_dtype_policy("mixed_bfloat16")
        x, _ = synthetic_task(32)
        x = subset(x, KEYS)
        model = _clip()
        out = model(x)
        self.assertEqual(
            keras.backend.standardize_dtype(out["image_embeddings"].dtype), "bfloat16"
        )
        loss = model.compute_loss(x, None, out)
        self.assertEqual(keras.backend.standardize_dtype(loss.dtype), "float32")
        self.assertEqual(
            keras.backend.standardize_dtype(model.logits_head.log_scale.dtype),
            "float32",
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        history = model.fit(x, batch_size=16, epochs=3, verbose=0)
        self.assertTrue(np.all(np.isfinite(history.history["loss"])))
        self.assertLess(history.history["loss"][-1], history.history["loss"][0])

    @pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch only")
    def test_torch_registers_every_variable_with_colliding_paths(self):
        enc_a, enc_b = _colliding_encoders()
        paths = [v.path for v in enc_a.variables] + [v.path for v in enc_b.variables]
        self.assertLess(len(set(paths)), len(paths))  # the pitfall's precondition
        for model in (CLIP(enc_a, enc_b, embed_dim=8), _clip()):
            registered = {id(p) for p in model.parameters()}
            missing = [
                v.path
                for v in model.trainable_variables
                if id(v.value) not in registered
            ]
            self.assertEqual(missing, [])

    @pytest.mark.large
    @pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch only")
    def test_torch_follows_jax_loss_curve_from_same_weights(self):
        # Colliding variable paths: without registration, zero_grad misses half
        # of the variables, their gradients accumulate and the curves diverge.
        enc_a, enc_b = _colliding_encoders()
        x, _ = synthetic_task(48, seed=3)
        model = CLIP(enc_a, enc_b, embed_dim=8)
        tmp = self.get_temp_dir()
        path = os.path.join(tmp, "initial.keras")
        model.save(path)
        steps = 6
        batches = {
            f"{i}/{k}": x[k][8 * i : 8 * i + 8]
            for i in range(steps)
            for k in ("images",)
        }
        batches.update(
            {f"{i}/token_ids": x["token_ids"][8 * i : 8 * i + 8] for i in range(steps)}
        )
        batches_path = os.path.join(tmp, "batches.npz")
        np.savez(batches_path, **batches)
        task = {
            "kind": "train",
            "model": path,
            "batches": batches_path,
            "steps": steps,
            "lr": 0.5,
            "name": "curve",
        }
        reference = run_in_backend("jax", [task], tmp)["curve"]
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        losses = []
        for i in range(steps):
            batch = {
                k.split("/")[1]: v for k, v in batches.items() if k.startswith(f"{i}/")
            }
            losses.append(float(model.train_on_batch(batch, return_dict=True)["loss"]))
        self.assertGreater(abs(losses[0] - losses[-1]), 1e-3)  # it trains
        np.testing.assert_allclose(losses, reference, atol=1e-4, rtol=1e-4)

    @pytest.mark.large
    def test_keras_hub_vit_and_bert_as_encoders_fit(self):
        import keras_hub

        vit = keras_hub.models.ViTBackbone(
            image_shape=(16, 16, 3),
            patch_size=8,
            num_layers=1,
            num_heads=2,
            hidden_dim=16,
            mlp_dim=32,
        )
        bert = keras_hub.models.BertBackbone(
            vocabulary_size=40,
            num_layers=1,
            num_heads=2,
            hidden_dim=16,
            intermediate_dim=32,
            max_sequence_length=8,
            dropout=0.0,
        )
        model = CLIP(vit, bert, embed_dim=16, image_pooling="first")
        self.assertEqual(sorted(model.input), ["images", "padding_mask", "token_ids"])
        x, _ = synthetic_task(128)
        x = subset(x, KEYS)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        history = model.fit(x, batch_size=16, epochs=12, verbose=0)
        losses = history.history["loss"]
        self.assertLess(losses[-1], 0.7 * losses[0], losses)
        self.run_model_saving_test(model, x, atol=1e-5)

    @pytest.mark.large
    def test_zero_shot_shapes_reaches_95_percent_within_60_seconds(self):
        # 24 classes (4 colours x 6 shapes), label-free training on captions,
        # zero-shot on held-out images from 4 averaged prompt templates. The
        # image tower is a small CNN: the tiny ViT ImageEncoder learns shapes
        # too slowly for a 60 s budget (about 55% supervised shape accuracy
        # after 8 epochs), and CLIP takes any Keras model as encoder.
        from keras_mm.data import load_shapes
        from keras_mm.encoders import TextEncoder

        data = load_shapes(
            num_train=1600, num_test=480, num_compositional=0, held_out=[]
        )
        start = time.time()
        model = CLIP(
            _small_cnn(),
            TextEncoder(
                vocabulary_size=len(data["vocabulary"]),
                max_sequence_length=data["sequence_length"],
                hidden_dim=32,
                num_layers=1,
                num_heads=4,
                intermediate_dim=64,
            ),
            embed_dim=32,
        )
        model.compile(optimizer=keras.optimizers.Adam(2e-3))
        model.fit(data["train"]["inputs"], batch_size=64, epochs=6, verbose=0)
        weights = model.build_zero_shot_weights(data["class_prompts"])
        probs = model.zero_shot_predict(data["test"]["inputs"]["images"], weights)
        elapsed = time.time() - start
        accuracy = float((probs.argmax(-1) == data["test"]["labels"]).mean())
        self.assertGreaterEqual(accuracy, 0.95)
        self.assertLess(elapsed, 60.0)


class CLIPCallsTest(TestCase):
    """Issue 21 items 3, 7 and 13 on one tiny CLIP (embed_dim = LENGTH = 6)."""

    VOCABULARY = ["[PAD]", "[UNK]", "a", "red", "blue", "circle", "square"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keras.utils.set_random_seed(3)
        cls.model = CLIP(
            image_encoder(), text_encoder(), embed_dim=6, vocabulary=cls.VOCABULARY
        )
        x, _ = synthetic_task(4)
        cls.x = subset(x, KEYS)

    def test_wrong_calls_raise_and_leave_the_model_usable(self):
        # On JAX a wrong call inside `predict` left every variable detached:
        # later calls and `save` failed with "'NoneType' object is not callable".
        import tensorflow as tf

        model, images = self.model, self.x["images"]
        expected = model.encode_image(images)
        bad_calls = {
            "images": [
                lambda: model.encode_image(np.zeros((2, 20, 20, 3), "float32")),
                lambda: model.encode_image(images[0]),  # no batch axis
                lambda: model.encode_image(np.array([["a picture"]])),
                lambda: model.zero_shot_predict(images[0], np.eye(6, dtype="float32")),
            ],
            "token_ids": [
                lambda: model.encode_text(self.x["token_ids"][0]),
                lambda: model.encode_text(self.x["token_ids"].astype("float32")),
            ],
        }
        for arg, calls in bad_calls.items():
            for call in calls:
                with self.assertRaisesRegex(ValueError, f"`{arg}` must be"):
                    call()
        # Inside `predict` (a dataset is checked batch by batch while tracing).
        wrong = dict(self.x, images=np.zeros((4, 20, 20, 3), "float32"))
        with self.assertRaisesRegex(ValueError, "images shape="):
            model.predict(tf.data.Dataset.from_tensor_slices(wrong).batch(2), verbose=0)
        self.assertAllClose(model.encode_image(images), expected, atol=1e-6)
        path = os.path.join(self.get_temp_dir(), "clip.keras")
        model.save(path)
        self.assertTrue(os.path.getsize(path) > 0)

    def test_strings_are_tokenized_with_the_vocabulary(self):
        from keras_mm.data import encode_texts

        model = self.model
        texts = ["a red circle", "a blue square"]
        encoded = encode_texts(texts, self.VOCABULARY, 6)
        self.assertAllClose(
            model.encode_text(texts), model.encode_text(encoded), atol=1e-6
        )
        # keras_mm's TextEncoder knows its pad id: padding_mask is derived.
        self.assertAllClose(
            model.encode_text(encoded["token_ids"]),
            model.encode_text(encoded),
            atol=1e-6,
        )
        prompts = [["a red circle", "red circle"], ["a blue square", "square"]]
        flat = encode_texts([t for p in prompts for t in p], self.VOCABULARY, 6)
        self.assertAllClose(
            model.build_zero_shot_weights(prompts),
            model.build_zero_shot_weights(
                {k: v.reshape(2, 2, 6) for k, v in flat.items()}
            ),
            atol=1e-6,
        )
        revived = CLIP.from_config(model.get_config())
        self.assertEqual(revived.vocabulary, self.VOCABULARY)
        revived.vocabulary = None
        with self.assertRaisesRegex(ValueError, "vocabulary"):
            revived.encode_text(texts)

    def test_integer_prompts_of_embed_dim_length_are_token_ids(self):
        # (num_classes, length) token ids with length == embed_dim were taken
        # for class embeddings: silently wrong probabilities.
        model, images = self.model, self.x["images"]
        token_ids = np.array([[2, 3, 5, 0, 0, 0], [2, 4, 6, 0, 0, 0]], "int32")
        self.assertEqual(token_ids.shape[1], model.embed_dim)
        weights = model.build_zero_shot_weights(token_ids)
        scale = float(keras.ops.convert_to_numpy(model.logits_head.scale))
        for prompts in (token_ids, ["a red circle", "a blue square"]):
            classifier = model.zero_shot_classifier(prompts)
            (kernel,) = classifier.get_layer("class_embeddings").get_weights()
            self.assertAllClose(kernel, scale * weights.T, atol=1e-5)
        # Float arrays of that shape stay class embeddings.
        classifier = model.zero_shot_classifier(weights)
        (kernel,) = classifier.get_layer("class_embeddings").get_weights()
        self.assertAllClose(kernel, scale * weights.T, atol=1e-5)
        probs = model.zero_shot_predict(images, token_ids)
        self.assertAllClose(probs.sum(-1), np.ones(len(images)), atol=1e-5)

    def test_contrastive_batch_under_two_is_refused(self):
        # A batch of one trained to loss 0.0 (the positive is the only candidate).
        import tensorflow as tf

        model, x = self.model, self.x
        model.compile(optimizer="sgd")
        one = {k: v[:1] for k, v in x.items()}
        for call in (
            lambda: model.fit(one, verbose=0),
            lambda: model.fit(x, batch_size=1, verbose=0),
            lambda: model.fit(tf.data.Dataset.from_tensor_slices(one).batch(4)),
            lambda: model.evaluate(one, verbose=0),
        ):
            with self.assertRaisesRegex(ValueError, "at least 2 examples per batch"):
                call()


def test_positives_matrix_under_data_parallelism_must_span_the_global_batch(
    monkeypatch,
):
    """A replica's `y` rows must have one column per sample of the global batch."""
    from keras_mm.distribute import collectives

    model = _clip()
    y_pred = {
        "image_embeddings": np.ones((4, 16), "float32"),
        "text_embeddings": np.ones((4, 16), "float32"),
    }
    monkeypatch.setattr(collectives, "replica_count", lambda: 2)
    monkeypatch.setattr(collectives, "all_gather", lambda x: x)
    local = np.eye(4, dtype="float32")  # this replica's pairs only
    with pytest.raises(ValueError, match=r"shape \(4, 8\); received \(4, 4\)"):
        model.loss_terms(None, local, y_pred)
