import math

import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.losses.loss_utils import check_rank, check_same_shape, to_float32


def _check_temperature(temperature):
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        value = float("nan")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(
            f"`temperature` must be a finite number > 0. "
            f"Received: temperature={temperature!r}"
        )
    return value


def _distillation_rows(fn_name, student_logits, teacher_logits, temperature):
    """Per-row `T^2 KL(softmax(t/T) || softmax(s/T))`, shape `(B,)`."""
    temperature = _check_temperature(temperature)
    student = to_float32(student_logits)
    teacher = to_float32(teacher_logits)
    check_rank(fn_name, student, 2, "student_logits", "(B, num_classes)")
    check_rank(fn_name, teacher, 2, "teacher_logits", "(B, num_classes)")
    check_same_shape(fn_name, student, teacher, "student_logits", "teacher_logits")
    log_p_teacher = ops.log_softmax(teacher / temperature, axis=-1)
    log_p_student = ops.log_softmax(student / temperature, axis=-1)
    # log_softmax is finite for finite logits, so exp(.) * (.) is 0, never NaN,
    # where the teacher's probability underflows.
    kl = ops.sum(ops.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1)
    return (temperature**2) * kl


@keras_mm_export("keras_mm.losses.distillation_loss")
def distillation_loss(student_logits, teacher_logits, temperature=1.0):
    """Knowledge-distillation loss (seed section 3.3.3), Hinton et al. 2015.

        L = T^2 / B sum_i KL( softmax(t_i / T) || softmax(s_i / T) ),

    the row-averaged KL divergence from the temperature-softened teacher
    distribution to the student's, scaled by `T^2` so that gradient magnitudes
    do not shrink as `T` grows. Rows are any distributions over the last axis:
    class logits `(B, C)` or image-to-text similarity logits `(B, B)` (distil the
    transpose as well for the text-to-image direction). The teacher is not
    stopped: wrap it in `keras.ops.stop_gradient` if it must not train. Computed
    in float32 with `log_softmax`, stable for logits of any magnitude.

    Args:
        student_logits: `(B, C)` tensor.
        teacher_logits: `(B, C)` tensor.
        temperature: float > 0. Softmax temperature `T`.

    Returns:
        Scalar float32 loss.

    Example:

    >>> import numpy as np
    >>> z = np.array([[1.0, 2.0, 3.0]])
    >>> round(float(distillation_loss(z, z, temperature=2.0)), 6)
    0.0

    Reference:
        Hinton, Vinyals and Dean, 2015, "Distilling the Knowledge in a Neural
        Network", section 2; seed section 3.3.3.
    """
    return ops.mean(
        _distillation_rows(
            "distillation_loss", student_logits, teacher_logits, temperature
        )
    )


@keras_mm_export("keras_mm.losses.DistillationLoss")
class DistillationLoss(keras.losses.Loss):
    """Knowledge-distillation loss as a `keras.losses.Loss`.

    See `distillation_loss` for the equation. Call convention:
    `y_true` = teacher logits, `y_pred` = student logits, so
    `model.compile(loss=DistillationLoss(temperature=2.0))` trains a student on
    precomputed teacher logits. `call` returns the per-row `T^2 KL`, `(B,)`;
    the default reduction averages it.

    Args:
        temperature: float > 0. Softmax temperature `T`.
        name: str. Name of the loss.
        reduction: Keras reduction, default `"sum_over_batch_size"` (mean).
        dtype: computation dtype; float32 by default (keep it).

    Example:

    >>> import numpy as np
    >>> z = np.array([[1.0, 2.0, 3.0]])
    >>> round(float(DistillationLoss(temperature=2.0)(z, z)), 6)
    0.0

    Reference:
        Hinton et al., 2015; seed section 3.3.3.
    """

    def __init__(
        self,
        temperature=1.0,
        name="distillation_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = _check_temperature(temperature)

    def call(self, y_true, y_pred):
        return _distillation_rows(
            self.__class__.__name__, y_pred, y_true, self.temperature
        )

    def get_config(self):
        config = super().get_config()
        config["temperature"] = self.temperature
        return config
