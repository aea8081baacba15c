import doctest
import importlib

import pytest

# Modules whose docstring examples run offline (the others load checkpoints).
MODULES = ["keras_mm.pretrained.converted_hub_encoder"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), verbose=False)
    assert result.attempted > 0 and result.failed == 0
