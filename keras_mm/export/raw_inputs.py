"""Raw-input serving endpoints: strings and encoded JPEG/PNG bytes in the graph.

`encode_text_strings` tokenizes a batch of strings with the model's keras-hub
tokenizer (a TensorFlow graph: byte-pair, SentencePiece or word-piece lookups
saved as SavedModel resources) and runs the text tower; `encode_image_bytes`
decodes each image, resizes its shortest side (bicubic, antialiased above a 1.1x
shrink), crops the centre and normalises, exactly as the training stream
(`keras_mm.data.ImageTextDataset`) does, then runs the image tower. A client then
needs neither the tokenizer nor the image preprocessing (the open_clip /
TF-Serving gap this closes). Bad inputs fail with an `InvalidArgumentError` whose
message names the endpoint and the input; the serving process keeps running.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_mm.data._stream_images import JPEG_RATIOS, preprocess

TEXT_ENDPOINT = "encode_text_strings"
IMAGE_ENDPOINT = "encode_image_bytes"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Objects whose attributes may hold a tokenizer's TensorFlow resources.
WALKED_MODULES = ("keras_hub", "keras_mm", "tensorflow_text", "keras")


def decode_image(data, size):
    """uint8 `(H, W, 3)` of JPEG or PNG bytes; JPEG scaled in the DCT as in training.

    The training stream decodes a JPEG at least `r` times the target size with
    libjpeg's scaling `ratio=r` (2, 4 or 8): the same choice is made here.
    """
    is_jpeg = tf.io.is_jpeg(data)
    is_png = tf.equal(tf.strings.substr(data, 0, len(PNG_MAGIC)), PNG_MAGIC)
    check = tf.debugging.Assert(
        tf.logical_or(is_jpeg, is_png),
        [
            f"{IMAGE_ENDPOINT}: every element of `image_bytes` must be an encoded "
            "JPEG or PNG image; received bytes starting with",
            tf.strings.substr(data, 0, 16),
        ],
    )

    def jpeg():
        shape = tf.io.extract_jpeg_shape(data)
        short = tf.minimum(shape[0], shape[1])
        index = tf.add_n(
            [tf.cast(short >= size * r, tf.int32) for r in JPEG_RATIOS[1:]]
        )
        branches = [
            (lambda r=r: tf.io.decode_jpeg(data, channels=3, ratio=r))
            for r in JPEG_RATIOS
        ]
        return tf.switch_case(index, branches)

    def png():
        return tf.io.decode_png(data, channels=3, dtype=tf.uint8)

    with tf.control_dependencies([check]):
        image = tf.cond(is_jpeg, jpeg, png)
    image.set_shape([None, None, 3])
    return image


def image_bytes_to_pixels(image_bytes, size, mean, std):
    """`(N,)` encoded images -> `(N, size, size, 3)` float32 model inputs."""

    def one(data):
        pixels = tf.cast(decode_image(data, size), tf.float32)
        return preprocess(pixels, size, mean, std)

    return tf.map_fn(
        one,
        image_bytes,
        fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32),
    )


def preprocess_image_bytes(data, size, mean, std):
    """One image's model input, a NumPy `(size, size, 3)` array (eager)."""
    batch = tf.constant([bytes(data)])
    return image_bytes_to_pixels(batch, int(size), mean, std).numpy()[0]


def check_texts(texts):
    """Refuse empty (or whitespace-only) strings with a readable error."""
    lengths = tf.strings.length(tf.strings.strip(texts))
    return tf.debugging.assert_positive(
        lengths,
        message=f"{TEXT_ENDPOINT}: every element of `texts` must be a non-empty "
        "string; got an empty one",
    )


def tf_trackables(obj, depth=4):
    """TensorFlow trackables (lookup tables, SentencePiece models) inside `obj`.

    On the JAX and torch backends a keras-hub tokenizer is not itself a
    TensorFlow trackable, but the resources it calls are; the SavedModel must
    hold them.
    """
    found, seen = [], set()

    def walk(value, level):
        if id(value) in seen or level > depth:
            return
        seen.add(id(value))
        is_layer = isinstance(value, keras.layers.Layer)
        if isinstance(value, tf.__internal__.tracking.Trackable) and not is_layer:
            found.append(value)
            return
        if isinstance(value, dict):
            for item in value.values():
                walk(item, level + 1)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, level + 1)
        elif hasattr(value, "__dict__") and (
            is_layer or type(value).__module__.split(".")[0] in WALKED_MODULES
        ):
            for item in vars(value).values():
                walk(item, level + 1)

    walk(obj, 0)
    return found


def add_raw_endpoints(archive, tensor_fns, specs, text_inputs, image_settings):
    """Add `encode_text_strings` / `encode_image_bytes` to a Keras `ExportArchive`.

    Args:
        archive: the `keras.export.ExportArchive` holding the tensor endpoints.
        tensor_fns: `{"encode_text": fn, "encode_image": fn}` as returned by
            `archive.add_endpoint` (TensorFlow functions on every backend).
        specs: the tensor endpoints' input specs, `{name: [InputSpec, ...]}`.
        text_inputs: callable strings -> `{"token_ids", "padding_mask"}` with a
            `.layer` to track, or None.
        image_settings: `(size, mean, std)` or None.

    Returns:
        The names of the endpoints added.
    """
    added = []
    if text_inputs is not None and "encode_text" in tensor_fns:
        text_fn = tensor_fns["encode_text"]
        text_specs = specs["encode_text"]
        for resource in tf_trackables(text_inputs.layer):
            archive.track(resource)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
        def encode_text_strings(texts):
            with tf.control_dependencies([check_texts(texts)]):
                tokens = text_inputs(texts)
            args = [tf.cast(tokens[s.name], s.dtype) for s in text_specs]
            return text_fn(*args)

        encode_text_strings.get_concrete_function()
        archive.add_endpoint(TEXT_ENDPOINT, encode_text_strings)
        added.append(TEXT_ENDPOINT)
    if image_settings is not None and "encode_image" in tensor_fns:
        size, mean, std = image_settings
        image_fn = tensor_fns["encode_image"]
        mean, std = np.asarray(mean, "float32"), np.asarray(std, "float32")

        @tf.function(
            input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
        )
        def encode_image_bytes(image_bytes):
            return image_fn(image_bytes_to_pixels(image_bytes, size, mean, std))

        encode_image_bytes.get_concrete_function()
        archive.add_endpoint(IMAGE_ENDPOINT, encode_image_bytes)
        added.append(IMAGE_ENDPOINT)
    return added
