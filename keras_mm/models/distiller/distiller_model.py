import math

import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.losses import distillation_loss
from keras_mm.models.model_utils import check_non_negative
from keras_mm.models.multimodal_model import MultimodalModel, _shape

CONTRASTIVE_KEYS = ("image_embeddings", "text_embeddings")
# CLIP's initial logit scale, for contrastive models without `similarity`.
_DEFAULT_SCALE = 1.0 / 0.07


def _unwrap(struct):
    if isinstance(struct, (list, tuple)) and len(struct) == 1:
        return struct[0]
    return struct


def _inputs_of(model):
    """The symbolic input structure of a functional or `Sequential` model."""
    struct = getattr(model, "_inputs_struct", None)
    return _unwrap(struct if struct is not None else model.inputs)


def _outputs_of(model):
    struct = getattr(model, "_outputs_struct", None)
    return _unwrap(struct if struct is not None else model.outputs)


def _kind(model, arg):
    """`"contrastive"` (CLIP-type) or `"classifier"`, from the model's outputs."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`{arg}` must be a `keras.Model`. Received: {arg} of type "
            f"{type(model).__name__}"
        )
    try:
        outputs = _outputs_of(model)
        _inputs_of(model)
    except (AttributeError, ValueError):
        outputs = None
    if outputs is None:
        raise ValueError(
            f"`{arg}` must be a functional or Sequential model built on "
            f"`keras.Input`, so that its inputs and outputs are known. Received: "
            f"{arg}={model.name!r} without defined inputs"
        )
    if isinstance(outputs, dict) and all(k in outputs for k in CONTRASTIVE_KEYS):
        return "contrastive"
    logits = outputs.get("logits") if isinstance(outputs, dict) else outputs
    if isinstance(logits, keras.KerasTensor) and len(logits.shape) == 2:
        return "classifier"
    keys = sorted(outputs) if isinstance(outputs, dict) else None
    raise ValueError(
        f"`{arg}` must be a CLIP-type model (outputs 'image_embeddings' and "
        "'text_embeddings') or a classifier (a (batch, num_classes) logits output, "
        f"or a dict with 'logits'). Received: {arg} with output keys={keys}"
    )


def _logits_tensor(model):
    outputs = _outputs_of(model)
    return outputs["logits"] if isinstance(outputs, dict) else outputs


def _classifier_view(model, feature_layer, arg):
    """A model sharing `model`'s layers: inputs -> {"logits", "features"}.

    The features are the output of `feature_layer`, or else the input of the
    layer that produces the logits (the penultimate representation).
    """
    logits = _logits_tensor(model)
    if feature_layer is not None:
        try:
            features = model.get_layer(feature_layer).output
        except ValueError:
            raise ValueError(
                f"`{arg}_feature_layer` must name a layer of `{arg}`. Received: "
                f"{arg}_feature_layer={feature_layer!r}"
            ) from None
    else:
        history = logits._keras_history
        node = history.operation._inbound_nodes[history.node_index]
        features = node.input_tensors[0]
    if len(features.shape) != 2 or features.shape[-1] is None:
        raise ValueError(
            f"The `{arg}` features must be (batch, d) with known d; pass "
            f"`{arg}_feature_layer` naming a layer with such an output. Received: "
            f"features shape={tuple(features.shape)}"
        )
    return keras.Model(
        _inputs_of(model),
        {"logits": logits, "features": features},
        name=f"{model.name}_{arg}_view",
    )


def _input_specs(student, teacher):
    """Model inputs: the student's, plus any input only the teacher takes."""
    s_struct, t_struct = _inputs_of(student), _inputs_of(teacher)
    if isinstance(s_struct, dict) != isinstance(t_struct, dict):
        raise ValueError(
            "`teacher` and `student` must take the same kind of inputs (both a "
            "dict or both one tensor). Received: teacher input="
            f"{keras.tree.map_structure(lambda t: tuple(t.shape), t_struct)}, "
            "student input="
            f"{keras.tree.map_structure(lambda t: tuple(t.shape), s_struct)}"
        )

    def spec(t, name):
        return keras.Input(shape=tuple(t.shape[1:]), dtype=str(t.dtype), name=name)

    if not isinstance(s_struct, dict):
        if tuple(s_struct.shape[1:]) != tuple(t_struct.shape[1:]):
            raise ValueError(
                "`teacher` and `student` must take inputs of the same shape. "
                f"Received: teacher input shape={tuple(t_struct.shape)}, student "
                f"input shape={tuple(s_struct.shape)}"
            )
        return spec(s_struct, "inputs")
    specs = {k: spec(v, k) for k, v in s_struct.items()}
    for k, v in t_struct.items():
        if k in specs and tuple(specs[k].shape[1:]) != tuple(v.shape[1:]):
            raise ValueError(
                f"`teacher` and `student` must take inputs['{k}'] of the same "
                f"shape. Received: teacher {k} shape={tuple(v.shape)}, student "
                f"{k} shape={tuple(specs[k].shape)}"
            )
        specs.setdefault(k, spec(v, k))
    return specs


def _select(inputs, struct):
    if isinstance(struct, dict):
        return {k: inputs[k] for k in struct}
    return inputs


def _mse(a, b):
    a, b = ops.cast(a, "float32"), ops.cast(b, "float32")
    return ops.mean(ops.square(a - ops.stop_gradient(b)))


@keras_mm_export("keras_mm.models.Distiller")
class Distiller(MultimodalModel):
    """Multimodal knowledge distillation: a frozen teacher trains a smaller student.

    Seed section 3.3.3. The teacher is frozen (`teacher.trainable = False`) and
    runs in inference mode inside `compute_loss`; only the student and a learned
    feature projection train. The loss is

        L = alpha * L_task + (1 - alpha) * L_KD + feature_weight * L_feat,

    - `L_KD = distillation_loss(student_logits, teacher_logits, temperature)`
      (Hinton et al., 2015: `T^2 KL(softmax(t/T) || softmax(s/T))`);
    - `L_feat = mean ||P s_f - t_f||^2`, matching a learned linear projection
      `P` of the student features onto the teacher features (FitNets, Romero et
      al., 2015), so the two may have different widths;
    - `L_task`: the student's own objective on the labels.

    Two kinds of teacher/student pairs are supported, told apart by outputs:

    - classifiers (any functional model with `(batch, num_classes)` logits, or
      a dict output with `"logits"`, e.g. `VQAModel`): `L_KD` on the class
      logits; features are the input of the layer producing the logits (or
      `*_feature_layer`); `L_task` is the softmax cross-entropy with `y`
      (answer/class ids, or `(batch, num_classes)` soft targets); with no `y`
      it is 0 (distillation from unlabelled data);
    - CLIP-type models (outputs `"image_embeddings"` and `"text_embeddings"`,
      e.g. `CLIP`): `L_KD` on the in-batch image-text similarity logits
      (each model's `similarity`, or `cos / 0.07`), averaged over the
      image-to-text rows and text-to-image columns; features are both
      embeddings; `L_task` is the student's own `loss_terms` (e.g. its
      contrastive loss).

    Train with `compile(optimizer)` + `fit(x, y)`; the terms are reported as
    `task_loss`, `distillation_loss` and `feature_loss`. The trained
    `distiller.student` is an ordinary model: save it alone with
    `distiller.student.save("student.keras")`. Keras' own
    `keras.distillation.Distiller` is similar for classifiers; this one adds
    CLIP-type pairs, projected feature matching and keras_mm's float32 loss.

    Args:
        teacher: a trained keras_mm CLIP-type model or classifier (functional).
        student: a model of the same kind taking the same inputs, with logits
            of the same shape.
        temperature: float > 0. Softmax temperature `T` of `L_KD`.
        alpha: float in [0, 1]. Weight of `L_task`; `1 - alpha` weighs `L_KD`.
        feature_weight: float >= 0. Weight of `L_feat` (0 = logits only).
        teacher_feature_layer: str or None. Classifiers: the teacher layer whose
            `(batch, d)` output is matched.
        student_feature_layer: str or None. Classifiers: the student's.
        **kwargs: `name`, `trainable`, `dtype` (of the projection).

    Call arguments:
        inputs: the student's inputs (a dict of arrays or one tensor), plus any
            input only the teacher takes.

    Returns:
        Classifiers: `{"logits", "features", "projected_features"}` of the
        student. CLIP-type: the student's outputs plus
        `"projected_image_embeddings"`, `"projected_text_embeddings"`.

    Example:

    >>> distiller = Distiller(teacher, student, temperature=4.0,
    ...                       alpha=0.5, feature_weight=0.1)  # doctest: +SKIP
    >>> distiller.compile(optimizer="adam")  # doctest: +SKIP
    >>> distiller.fit(x_train, y_train, epochs=10)  # doctest: +SKIP
    >>> distiller.student.save("student.keras")  # doctest: +SKIP

    Reference:
        Hinton, Vinyals and Dean, 2015, "Distilling the Knowledge in a Neural
        Network"; Romero et al., 2015, "FitNets"; seed 3.3.3.
    """

    _nested_layer_keys = ("teacher", "student")

    def __init__(
        self,
        teacher,
        student,
        temperature=2.0,
        alpha=0.5,
        feature_weight=1.0,
        teacher_feature_layer=None,
        student_feature_layer=None,
        dtype=None,
        **kwargs,
    ):
        try:
            temperature_value = float(temperature)
        except (TypeError, ValueError):
            temperature_value = float("nan")
        if not (temperature_value > 0 and math.isfinite(temperature_value)):
            raise ValueError(
                "`temperature` must be a finite number > 0. Received: "
                f"temperature={temperature!r}"
            )
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise ValueError(
                f"`alpha` must be a float in [0, 1]. Received: alpha={alpha!r}"
            )
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(
                f"`alpha` must be a float in [0, 1]. Received: alpha={alpha!r}"
            )
        check_non_negative("feature_weight", feature_weight)
        if teacher is student:
            raise ValueError("`teacher` and `student` must be different models.")
        kind = _kind(teacher, "teacher")
        student_kind = _kind(student, "student")
        if kind != student_kind:
            raise ValueError(
                "`teacher` and `student` must be of the same kind. Received: a "
                f"{kind} teacher and a {student_kind} student"
            )
        inputs = _input_specs(student, teacher)

        # === Functional graph: the student and the feature projection ===
        if kind == "classifier":
            teacher_view = _classifier_view(teacher, teacher_feature_layer, "teacher")
            student_view = _classifier_view(student, student_feature_layer, "student")
            t_logits = _outputs_of(teacher_view)["logits"]
            s_logits = _outputs_of(student_view)["logits"]
            if tuple(t_logits.shape[1:]) != tuple(s_logits.shape[1:]):
                raise ValueError(
                    "`teacher` and `student` must have logits of the same shape. "
                    f"Received: teacher logits shape={tuple(t_logits.shape)}, "
                    f"student logits shape={tuple(s_logits.shape)}"
                )
            width = _outputs_of(teacher_view)["features"].shape[-1]
            projection = keras.layers.Dense(
                width, dtype=dtype, name="feature_projection"
            )
            out = student_view(_select(inputs, _inputs_of(student)))
            outputs = {
                "logits": out["logits"],
                "features": out["features"],
                "projected_features": projection(out["features"]),
            }
            projections = [projection]
        else:
            teacher_view, student_view = teacher, student
            out = student(_select(inputs, _inputs_of(student)))
            outputs = dict(out)
            projections = []
            for key in CONTRASTIVE_KEYS:
                width = _outputs_of(teacher)[key].shape[-1]
                projection = keras.layers.Dense(
                    width, dtype=dtype, name=f"{key[:-1]}_projection"
                )
                outputs[f"projected_{key}"] = projection(out[key])
                projections.append(projection)
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Attributes (after super().__init__, for torch) ===
        # Set True first: TensorFlow's AutoTrackable skips `x.trainable = False`
        # when it is already False, so a teacher restored from a file (saved
        # with trainable=False) would keep its nested layers trainable.
        teacher.trainable = True
        teacher.trainable = False
        self.teacher = teacher
        self.student = student
        self.teacher_view = teacher_view
        self.projections = projections
        self.kind = kind
        self.temperature = temperature_value
        self.alpha = float(alpha)
        self.feature_weight = float(feature_weight)
        self.teacher_feature_layer = teacher_feature_layer
        self.student_feature_layer = student_feature_layer
        self._add_term_trackers(["task_loss", "distillation_loss", "feature_loss"])
        self._finish_init()

    # ----------------------------------------------------------------- inputs
    def _validate_inputs(self, inputs):
        if isinstance(self._inputs_struct, dict):
            return super()._validate_inputs(inputs)
        if isinstance(inputs, dict):
            raise ValueError(
                f"{self.__class__.__name__}: `inputs` must be one tensor. "
                f"Received: a dict with keys {sorted(inputs)}"
            )
        want = tuple(self._inputs_struct.shape)
        got = _shape(inputs)
        ok = len(got) == len(want) and all(
            w is None or g is None or w == g for g, w in zip(got[1:], want[1:])
        )
        if not ok:
            raise ValueError(
                f"{self.__class__.__name__}: `inputs` must have shape {want} "
                f"(None = any size). Received: inputs shape={got}"
            )
        return inputs

    # ------------------------------------------------------------------- loss
    def teacher_outputs(self, x):
        """The frozen teacher's outputs on `x` (inference mode, no gradient)."""
        out = self.teacher_view(_select(x, _inputs_of(self.teacher)), training=False)
        return keras.tree.map_structure(ops.stop_gradient, out)

    def _pair_logits(self, model, image, text):
        if hasattr(model, "similarity"):
            return ops.cast(model.similarity(image, text), "float32")
        image = ops.normalize(ops.cast(image, "float32"), axis=-1)
        text = ops.normalize(ops.cast(text, "float32"), axis=-1)
        return _DEFAULT_SCALE * ops.matmul(image, ops.transpose(text))

    def loss_terms(self, x, y=None, y_pred=None, training=False):
        teacher = self.teacher_outputs(x)
        t = self.temperature
        if self.kind == "classifier":
            s_logits = ops.cast(y_pred["logits"], "float32")
            kd = distillation_loss(s_logits, teacher["logits"], temperature=t)
            feat = _mse(y_pred["projected_features"], teacher["features"])
            if y is None:
                task = ops.zeros((), "float32")
            elif len(y.shape) == len(s_logits.shape):
                task = ops.mean(
                    keras.losses.categorical_crossentropy(
                        ops.cast(y, "float32"), s_logits, from_logits=True
                    )
                )
            else:
                task = ops.mean(
                    keras.losses.sparse_categorical_crossentropy(
                        y, s_logits, from_logits=True
                    )
                )
        else:
            images, texts = CONTRASTIVE_KEYS
            s = self._pair_logits(self.student, y_pred[images], y_pred[texts])
            # The teacher's logit scale is a variable: no gradient to it.
            z = ops.stop_gradient(
                self._pair_logits(self.teacher, teacher[images], teacher[texts])
            )
            kd = 0.5 * (
                distillation_loss(s, z, temperature=t)
                + distillation_loss(ops.transpose(s), ops.transpose(z), temperature=t)
            )
            feat = 0.5 * (
                _mse(y_pred[f"projected_{images}"], teacher[images])
                + _mse(y_pred[f"projected_{texts}"], teacher[texts])
            )
            if hasattr(self.student, "loss_terms"):
                student_pred = {k: y_pred[k] for k in _outputs_of(self.student)}
                task = self.student.loss_terms(
                    _select(x, _inputs_of(self.student)),
                    y=y,
                    y_pred=student_pred,
                    training=training,
                )["loss"]
                task = ops.cast(task, "float32")
            else:
                task = ops.zeros((), "float32")
        total = self.alpha * task + (1.0 - self.alpha) * kd + self.feature_weight * feat
        return {
            "loss": total,
            "task_loss": task,
            "distillation_loss": kd,
            "feature_loss": feat,
        }

    # ----------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "teacher": keras.layers.serialize(self.teacher),
                "student": keras.layers.serialize(self.student),
                "temperature": self.temperature,
                "alpha": self.alpha,
                "feature_weight": self.feature_weight,
                "teacher_feature_layer": self.teacher_feature_layer,
                "student_feature_layer": self.student_feature_layer,
            }
        )
        return config
