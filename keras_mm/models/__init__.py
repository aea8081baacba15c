"""keras_mm.models."""
