"""Data-parallel training with global negatives, on each backend's own engine.

Backend modules (`jax_processes`, `tensorflow_devices`, ...) are imported
lazily by their users, so importing this package imports no engine.
"""
