import keras
from keras import ops

from keras_mm.models.model_utils import sequence_features


@keras.saving.register_keras_serializable(package="keras_mm")
class SegmentEmbedding(keras.layers.Layer):
    """Adds a learned vector per segment, then concatenates the segments.

    Called on a list `[x_0, ..., x_{n-1}]` of `(batch, T_i, d)` token
    sequences (e.g. image, history and question tokens), it returns
    `concat_i(x_i + s_i)` along the token axis, `(batch, sum_i T_i, d)`, so
    that one transformer over the joint sequence knows where each token
    came from (the segment embeddings of BERT and VisualBERT).

    Args:
        num_segments: int. Number of list entries.
        **kwargs: base layer arguments.
    """

    def __init__(self, num_segments, **kwargs):
        super().__init__(**kwargs)
        if (
            not isinstance(num_segments, int)
            or isinstance(num_segments, bool)
            or num_segments < 1
        ):
            raise ValueError(
                "`num_segments` must be a positive integer. Received: "
                f"num_segments={num_segments!r}"
            )
        self.num_segments = num_segments

    def build(self, input_shape):
        if len(input_shape) != self.num_segments:
            raise ValueError(
                f"{self.__class__.__name__}: expected a list of "
                f"{self.num_segments} token sequences. Received: "
                f"{len(input_shape)} inputs"
            )
        self.segments = self.add_weight(
            name="segments",
            shape=(self.num_segments, input_shape[0][-1]),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )

    def call(self, inputs):
        outputs = []
        for i, x in enumerate(inputs):
            outputs.append(x + ops.cast(self.segments[i], x.dtype))
        return ops.concatenate(outputs, axis=1)

    def compute_output_shape(self, input_shape):
        lengths = [s[1] for s in input_shape]
        total = None if None in lengths else sum(lengths)
        return (input_shape[0][0], total, input_shape[0][-1])

    def get_config(self):
        config = super().get_config()
        config["num_segments"] = self.num_segments
        return config


def masked_mean(x, mask):
    """Mean over axis -2 of `x`, over the entries where `mask` is True."""
    w = ops.expand_dims(ops.cast(mask, x.dtype), -1)
    total = ops.sum(x * w, axis=-2)
    return total / ops.maximum(ops.sum(w, axis=-2), ops.cast(1.0, x.dtype))


def fuse_dialogue(layers, images, text, pad_id):
    """Joint transformer over [image; history; question] tokens -> (tokens, mask)."""
    image_tokens = layers["image_projection"](
        sequence_features(layers["image_encoder"](images))
    )
    text_ids = ops.concatenate([text["history_ids"], text["question_ids"]], axis=1)
    text_tokens = layers["text_embedding"](text_ids)
    history_length = text["history_ids"].shape[1]
    x = layers["segments"](
        [
            image_tokens,
            text_tokens[:, :history_length],
            text_tokens[:, history_length:],
        ]
    )
    image_mask = ops.ones_like(image_tokens[:, :, 0], dtype="bool")
    mask = ops.concatenate([image_mask, ops.not_equal(text_ids, pad_id)], axis=1)
    for block in layers["blocks"]:
        x = block(x, padding_mask=mask)
    return layers["fusion_norm"](x), mask
