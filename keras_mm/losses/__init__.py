"""keras_mm.losses."""
