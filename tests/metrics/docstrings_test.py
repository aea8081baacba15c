import doctest
import importlib

import pytest

MODULES = [
    "keras_mm.metrics.bleu_score",
    "keras_mm.metrics.cider_d",
    "keras_mm.metrics.normalize_vqa_answer",
    "keras_mm.metrics.retrieval_metrics",
    "keras_mm.metrics.vqa_accuracy",
    "keras_mm.metrics.zero_shot_accuracy",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), verbose=False)
    assert result.attempted > 0 and result.failed == 0
