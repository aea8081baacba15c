"""keras_mm.export."""
