"""keras_mm.metrics."""
