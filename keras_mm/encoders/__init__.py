"""keras_mm.encoders."""
