"""Datasets and readers (NumPy and `keras.utils.PyDataset`; no download)."""

from keras_mm.data.split_label import make_split_label_dataset

__all__ = ["make_split_label_dataset"]
