"""Shared checks of the property tests."""

import re


def assert_names_argument(error, arg):
    """Check that an error message names `arg` and what was received.

    The argument appears in backticks (`` `arg` must be ...``) or after
    "Received:" (``Received: arg shape=(2, 3)``), as keras_mm's messages do.
    """
    message = str(error)
    assert "Received" in message, message
    named = f"`{arg}`" in message or re.search(rf"Received: .*\b{arg}\b", message)
    assert named, f"{arg!r} is not named in: {message}"
