"""keras_mm.metrics: retrieval, zero-shot, VQA and captioning metrics, callbacks.

Metrics are NumPy functions (they accept backend tensors) evaluated over a whole
validation or test set; the callbacks run them at the end of epochs in `fit`.
"""

from keras_mm.metrics.bleu_score import bleu_score
from keras_mm.metrics.cider_d import cider_d
from keras_mm.metrics.dialogue_ranking import ranking_metrics
from keras_mm.metrics.normalize_vqa_answer import normalize_vqa_answer
from keras_mm.metrics.retrieval_callback import RetrievalCallback
from keras_mm.metrics.retrieval_metrics import retrieval_metrics
from keras_mm.metrics.vqa_accuracy import vqa_accuracy
from keras_mm.metrics.zero_shot_accuracy import zero_shot_accuracy
from keras_mm.metrics.zero_shot_callback import ZeroShotCallback
from keras_mm.metrics.zero_shot_classifier import zero_shot_classifier

__all__ = [
    "RetrievalCallback",
    "ZeroShotCallback",
    "bleu_score",
    "cider_d",
    "normalize_vqa_answer",
    "ranking_metrics",
    "retrieval_metrics",
    "vqa_accuracy",
    "zero_shot_accuracy",
    "zero_shot_classifier",
]
