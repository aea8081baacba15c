"""Test utilities shared by keras_mm's test suite (no TensorFlow import)."""

from keras_mm.testing.test_case import TestCase

__all__ = ["TestCase"]
