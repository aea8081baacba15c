"""Distiller: loss terms against a NumPy oracle, CLIP and VQA pairs, saving, errors.

The learning claim (24 shape classes: teacher above 0.8, a student with under half
its parameters within 0.10 of it, every loss term halved, the teacher frozen, the
student saved and reloaded alone) is asserted by notebooks/12_distillation.ipynb,
which CI executes under every backend (tests/notebooks_test.py).
"""

import os

import keras
import numpy as np
from keras import ops

from keras_mm.models import CLIP
from keras_mm.models.distiller import Distiller
from keras_mm.models.vqa import VQAModel
from keras_mm.testing.test_case import TestCase
from tests.models.application_test_utils import (
    eager_round_trip,
    json_config,
    tiny_image_encoder,
    tiny_text_encoder,
)
from tests.models.model_test_utils import (
    image_encoder,
    subset,
    synthetic_task,
    text_encoder,
)

KEYS = ("images", "token_ids", "padding_mask")


def _cnn(width, hidden, num_classes, name, image_size=16):
    return keras.Sequential(
        [
            keras.Input((image_size, image_size, 3), name="images"),
            keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation="relu", name="hidden"),
            keras.layers.Dense(num_classes, name="logits"),
        ],
        name=name,
    )


def _mlp(width, num_classes, name, seed):
    inputs = keras.Input((6,), name="x")
    hidden = keras.layers.Dense(
        width,
        activation="tanh",
        kernel_initializer=keras.initializers.RandomNormal(seed=seed),
        bias_initializer=keras.initializers.RandomNormal(seed=seed + 1),
        name="hidden",
    )(inputs)
    logits = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.RandomNormal(seed=seed + 2),
        name="logits",
    )(hidden)
    return keras.Model(inputs, logits, name=name)


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _weights(model):
    return [np.array(ops.convert_to_numpy(w)) for w in model.weights]


class DistillerTest(TestCase):
    def test_loss_terms_match_numpy_oracle(self):
        teacher = _mlp(8, 5, "teacher", seed=1)
        student = _mlp(4, 5, "student", seed=7)
        distiller = Distiller(
            teacher, student, temperature=3.0, alpha=0.25, feature_weight=0.5
        )
        rng = np.random.default_rng(0)
        projection = distiller.get_layer("feature_projection")
        projection.kernel.assign(rng.normal(size=(4, 8)).astype("float32"))
        projection.bias.assign(rng.normal(size=(8,)).astype("float32"))
        x = rng.normal(size=(6, 6)).astype("float32")
        y = rng.integers(0, 5, size=6)
        terms = distiller.evaluate_loss_terms(x, y)

        def forward(model):
            w_h, b_h, w_o, b_o = _weights(model)
            h = np.tanh(x @ w_h + b_h)
            return h @ w_o + b_o, h

        t_logits, t_feat = forward(teacher)
        s_logits, s_feat = forward(student)
        T = 3.0
        log_pt, log_ps = _log_softmax(t_logits / T), _log_softmax(s_logits / T)
        kd = T**2 * np.mean(np.sum(np.exp(log_pt) * (log_pt - log_ps), -1))
        w_p, b_p = _weights(projection)
        feat = np.mean((s_feat @ w_p + b_p - t_feat) ** 2)
        task = -np.mean(_log_softmax(s_logits)[np.arange(6), y])
        self.assertAllClose(terms["distillation_loss"], kd, atol=1e-5, rtol=1e-5)
        self.assertAllClose(terms["feature_loss"], feat, atol=1e-5, rtol=1e-5)
        self.assertAllClose(terms["task_loss"], task, atol=1e-5, rtol=1e-5)
        total = 0.25 * task + 0.75 * kd + 0.5 * feat
        self.assertAllClose(terms["loss"], total, atol=1e-5, rtol=1e-5)
        restored = eager_round_trip(self, distiller, x)
        self.assertIsInstance(restored, Distiller)
        self.assertFalse(restored.teacher.trainable)
        self.assertEqual(json_config(restored), json_config(distiller))
        self.assertAllClose(restored.evaluate_loss_terms(x, y), terms, atol=1e-5)
        # Without labels the task term is 0 (distillation from unlabelled data).
        unlabelled = distiller.evaluate_loss_terms(x)
        self.assertAllClose(unlabelled["task_loss"], 0.0)
        self.assertAllClose(unlabelled["loss"], 0.75 * kd + 0.5 * feat, atol=1e-5)

    def test_clip_teacher_distils_into_smaller_clip(self):
        x, _ = synthetic_task(64)
        x = subset(x, KEYS)
        teacher = CLIP(image_encoder(name="t_image"), text_encoder(name="t_text"))
        student = CLIP(
            image_encoder(name="s_image"), text_encoder(name="s_text"), embed_dim=8
        )
        # An untrained teacher is still a teacher: the student must match its
        # similarity logits (notebooks/12_distillation covers a trained teacher).
        frozen = _weights(teacher)
        distiller = Distiller(teacher, student, temperature=2.0, feature_weight=1.0)
        self.assertEqual(distiller.kind, "contrastive")
        distiller.compile(optimizer=keras.optimizers.Adam(3e-3))
        history = distiller.fit(x, batch_size=16, epochs=6, verbose=0)
        kd = history.history["distillation_loss"]
        self.assertLess(kd[-1], 0.7 * kd[0], kd)
        for before, after in zip(frozen, _weights(teacher)):
            np.testing.assert_array_equal(before, after)
        student_path = os.path.join(self.get_temp_dir(), "clip_student.keras")
        distiller.student.save(student_path)
        alone = keras.saving.load_model(student_path)
        self.assertIsInstance(alone, CLIP)
        self.assertEqual(alone.embed_dim, 8)
        self.assertAllClose(alone(x), student(x), atol=1e-5)

    def test_loaded_distiller_keeps_teacher_frozen_and_optimizer_state(self):
        # Issue 21: TensorFlow made a loaded teacher trainable again (its nested
        # encoders' layers), so the optimizer state (built for the student)
        # was skipped and `fit` trained the teacher; and the teacher's logit
        # scale took gradients through `_pair_logits`.
        x = subset(synthetic_task(8, seed=4)[0], KEYS)
        teacher = CLIP(image_encoder(name="t_image"), text_encoder(name="t_text"))
        student = CLIP(
            image_encoder(name="s_image"), text_encoder(name="s_text"), embed_dim=8
        )
        distiller = Distiller(teacher, student)
        trainable = len(distiller.trainable_variables)
        distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
        distiller.fit(x, batch_size=4, epochs=1, verbose=0)  # 2 steps
        path = os.path.join(self.get_temp_dir(), "distiller.keras")
        distiller.save(path)

        loaded = keras.saving.load_model(path)
        self.assertEqual(len(loaded.trainable_variables), trainable)
        self.assertEqual(loaded.teacher.trainable_weights, [])
        self.assertEqual(int(ops.convert_to_numpy(loaded.optimizer.iterations)), 2)
        for a, b in zip(loaded.optimizer.variables, distiller.optimizer.variables):
            np.testing.assert_array_equal(
                ops.convert_to_numpy(a), ops.convert_to_numpy(b), err_msg=a.path
            )

        # Even a teacher made trainable gets no gradient from distillation.
        loaded.teacher.trainable = True
        loaded.compile(optimizer=keras.optimizers.SGD(1.0))
        frozen = _weights(loaded.teacher)
        loaded.fit(x, batch_size=8, epochs=1, verbose=0)
        for variable, before, after in zip(
            loaded.teacher.weights, frozen, _weights(loaded.teacher)
        ):
            np.testing.assert_array_equal(before, after, err_msg=variable.path)

    def test_vqa_models_as_teacher_and_student(self):
        # VQAModel is a classifier with a dict output {"logits"}.
        rng = np.random.default_rng(0)
        ids = rng.integers(2, 20, size=(8, 6)).astype("int32")
        x = {
            "images": rng.uniform(size=(8, 16, 16, 3)).astype("float32"),
            "token_ids": ids,
            "padding_mask": ids > 0,
        }
        teacher = VQAModel(
            tiny_image_encoder(width=16, name="vt_image"),
            tiny_text_encoder(width=16, name="vt_text"),
            num_answers=4,
        )
        student = VQAModel(
            tiny_image_encoder(width=8, name="vs_image"),
            tiny_text_encoder(width=8, name="vs_text"),
            num_answers=4,
            hidden_dim=8,
            fusion="concat",
        )
        distiller = Distiller(teacher, student, temperature=2.0)
        self.assertEqual(distiller.kind, "classifier")
        self.assertEqual(
            sorted(distiller(x)), ["features", "logits", "projected_features"]
        )
        terms = distiller.evaluate_loss_terms(x, np.arange(8) % 4)
        self.assertTrue(all(np.isfinite(v) and v > 0 for v in terms.values()), terms)
        self.assertEqual(distiller.teacher_view.name, f"{teacher.name}_teacher_view")
        self.assertEqual(len(teacher.trainable_weights), 0)
        self.assertEqual(
            len(distiller.trainable_weights), len(student.trainable_weights) + 2
        )

    def test_bad_arguments_and_inputs(self):
        teacher = _mlp(8, 5, "teacher", seed=1)
        student = _mlp(4, 5, "student", seed=2)
        with self.assertRaisesRegex(ValueError, "temperature"):
            Distiller(teacher, student, temperature=0.0)
        with self.assertRaisesRegex(ValueError, "alpha"):
            Distiller(teacher, student, alpha=1.5)
        with self.assertRaisesRegex(ValueError, "feature_weight"):
            Distiller(teacher, student, feature_weight=-1.0)
        with self.assertRaisesRegex(ValueError, "different models"):
            Distiller(teacher, teacher)
        with self.assertRaisesRegex(ValueError, "logits of the same shape"):
            Distiller(teacher, _mlp(4, 3, "three", seed=3))
        other = keras.Sequential([keras.Input((7,)), keras.layers.Dense(5)])
        with self.assertRaisesRegex(ValueError, "same shape"):
            Distiller(teacher, other)
        with self.assertRaisesRegex(ValueError, "student_feature_layer"):
            Distiller(teacher, student, student_feature_layer="nope")
        clip = CLIP(image_encoder(), text_encoder())
        with self.assertRaisesRegex(ValueError, "same kind"):
            Distiller(clip, student)
        with self.assertRaisesRegex(ValueError, "teacher"):
            Distiller("big model", student)
        distiller = Distiller(teacher, student)
        with self.assertRaisesRegex(ValueError, "inputs.*shape"):
            distiller(np.zeros((2, 7), "float32"))
        with self.assertRaisesRegex(ValueError, "fewer|compile|loss"):
            distiller.compile(optimizer="adam", loss="mse")
