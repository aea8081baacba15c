"""Internal helpers shared by keras_mm's layers and models."""
