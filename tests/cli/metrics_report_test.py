"""How `keras-mm evaluate` reports a metric the test split cannot measure.

`retrieval_metrics` gives NaN for R@K when K covers every candidate (issue 21,
item 7). The table shows "n/a", metrics.json holds null (NaN is not strict
JSON) and `--fail-under` fails on it instead of passing (`nan < x` is False).
"""

import json
import math

import pytest

from keras_mm.cli.app import RunError
from keras_mm.cli.evaluation import _check_thresholds, _json_safe, _pct


def test_nan_metric_is_n_a_in_the_table_and_null_in_json():
    assert _pct(float("nan")) == "n/a"
    assert _pct(None) == "n/a"
    assert _pct(0.25) == "25.0%"
    text = json.dumps(_json_safe({"image_to_text_r10": math.nan, "x": 0.5}))
    assert json.loads(text) == {"image_to_text_r10": None, "x": 0.5}
    assert "NaN" not in text


def test_fail_under_fails_on_an_unmeasurable_metric():
    with pytest.raises(RunError, match="image_to_text_r10 = n/a"):
        _check_thresholds({"image_to_text_r10": math.nan}, [("image_to_text_r10", 0.1)])
    assert (
        _check_thresholds({"image_to_text_r1": 0.5}, [("image_to_text_r1", 0.1)]) == 0
    )
