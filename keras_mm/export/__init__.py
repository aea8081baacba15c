"""keras_mm.export: TensorFlow SavedModel export with serving endpoints.

TensorFlow is imported lazily, only when an export runs.
"""

from keras_mm.export.saved_model import export_saved_model, serving_endpoints

__all__ = ["export_saved_model", "serving_endpoints"]
