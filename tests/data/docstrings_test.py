import doctest
import importlib

import pytest

MODULES = [
    "keras_mm.data.vocabulary",
    "keras_mm.data.encode_texts",
    "keras_mm.data.shapes",
    "keras_mm.data.multimodal_py_dataset",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), verbose=False)
    assert result.attempted > 0 and result.failed == 0
