"""Datasets and readers (NumPy, PyDataset, streaming tf.data; no download)."""

from keras_mm.data.answer_scores import make_answer_scores
from keras_mm.data.class_prompts import make_class_prompts
from keras_mm.data.coco_captions import read_coco_captions
from keras_mm.data.digits_trimodal import load_digits_trimodal
from keras_mm.data.encode_texts import encode_texts
from keras_mm.data.flickr30k_captions import read_flickr30k_captions
from keras_mm.data.image_text_dataset import ImageTextDataset
from keras_mm.data.karpathy_captions import read_karpathy_captions
from keras_mm.data.moving_shapes_videos import load_moving_shapes_videos
from keras_mm.data.multimodal_py_dataset import MultimodalPyDataset
from keras_mm.data.shape_captions import load_shape_captions
from keras_mm.data.shape_dialogues import load_shape_dialogues
from keras_mm.data.shape_questions import load_shape_questions
from keras_mm.data.shapes import load_shapes
from keras_mm.data.split_label import make_split_label_dataset
from keras_mm.data.tokenizer import make_tokenizer, tokenize_texts
from keras_mm.data.vocabulary import build_vocabulary
from keras_mm.data.vqa import read_vqa

__all__ = [
    "ImageTextDataset",
    "MultimodalPyDataset",
    "build_vocabulary",
    "encode_texts",
    "load_digits_trimodal",
    "load_moving_shapes_videos",
    "load_shape_captions",
    "load_shape_dialogues",
    "load_shape_questions",
    "load_shapes",
    "make_answer_scores",
    "make_class_prompts",
    "make_split_label_dataset",
    "make_tokenizer",
    "read_coco_captions",
    "read_flickr30k_captions",
    "read_karpathy_captions",
    "read_vqa",
    "tokenize_texts",
]
