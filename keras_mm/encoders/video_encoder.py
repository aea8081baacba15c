import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.encoders.encoder_utils import (
    OUTPUT_MODES,
    BaseEncoder,
    SequencePooling,
    check_choice,
    check_int,
    check_positive_float,
    check_rate,
    outputs_for,
    resolve_activation,
    shape_matches,
    transformer_blocks,
    unique_name,
)
from keras_mm.layers import AttentionFusion

POOLINGS = ("mean", "attention")


def _frame_input(frame_encoder):
    """The `(height, width, channels)` input shape of a single-input frame encoder."""
    if not isinstance(frame_encoder, keras.Model):
        raise ValueError(
            "`frame_encoder` must be a `keras.Model` from images (batch, H, W, C) to "
            f"features. Received: frame_encoder of type {type(frame_encoder).__name__}"
        )
    try:
        inputs = frame_encoder.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs or len(inputs) != 1 or len(inputs[0].shape) != 4:
        shapes = [tuple(x.shape) for x in inputs] if inputs else None
        raise ValueError(
            "`frame_encoder` must be a functional model with one image input of "
            f"shape (batch, H, W, C). Received: frame_encoder inputs={shapes}"
        )
    shape = tuple(inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise ValueError(
            "`frame_encoder` must have a fully known frame shape (H, W, C). "
            f"Received: frame shape={shape}"
        )
    return shape


def _frame_features(outputs):
    """`(batch, d)` from a frame encoder output: pooled, dict or token mean."""
    if isinstance(outputs, dict):
        outputs = outputs.get("pooled_output", outputs.get("sequence_output"))
    elif isinstance(outputs, (list, tuple)):
        outputs = outputs[0]
    if outputs is None or len(outputs.shape) not in (2, 3):
        raise ValueError(
            "`frame_encoder` must return (batch, d) features, (batch, tokens, d) "
            "tokens or a dict with 'pooled_output'. Received: an output of shape "
            f"{None if outputs is None else tuple(outputs.shape)}"
        )
    if len(outputs.shape) == 3:
        outputs = SequencePooling("mean", name="frame_token_pooling")(outputs)
    return outputs


class MergeFrames(keras.layers.Layer):
    """`(batch, T, H, W, C) -> (batch * T, H, W, C)` (frame-major within a video)."""

    def call(self, inputs):
        return ops.reshape(inputs, (-1,) + tuple(inputs.shape[2:]))

    def compute_output_shape(self, input_shape):
        batch, frames = input_shape[0], input_shape[1]
        merged = None if batch is None or frames is None else batch * frames
        return (merged,) + tuple(input_shape[2:])


class SplitFrames(keras.layers.Layer):
    """`(batch * T, d) -> (batch, T, d)`, the inverse of `MergeFrames`."""

    def __init__(self, num_frames, **kwargs):
        super().__init__(**kwargs)
        self.num_frames = num_frames

    def call(self, inputs):
        return ops.reshape(inputs, (-1, self.num_frames, inputs.shape[-1]))

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        batch = None if batch is None else batch // self.num_frames
        return (batch, self.num_frames, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config["num_frames"] = self.num_frames
        return config


@keras_mm_export("keras_mm.encoders.VideoEncoder")
class VideoEncoder(BaseEncoder):
    """A video encoder: a shared frame encoder plus temporal attention.

    Every one of the `num_frames` frames goes through the same `frame_encoder`
    (the frames of the batch are folded into the batch axis, so this is one
    call, as `TimeDistributed` would do); the per-frame features `(batch, T, d)`
    get a learned temporal position embedding, then `num_layers` pre-LayerNorm
    transformer blocks (keras-hub `TransformerEncoder`, i.e. multi-head
    self-attention over time) and a final LayerNorm. The clip is pooled by the
    mean over frames or by attention pooling over them (`AttentionFusion`,
    seed 4.3.1, applied to the T frame vectors). This is the video side of
    the seed's video question answering (section 6.2), after TimeSformer-style
    "space then time" factorised encoders (Bertasius et al., 2021).

    The temporal position embedding is what lets the encoder tell "moves left"
    from "moves right": without it, attention and mean pooling are invariant
    to the order of the frames.

    Args:
        frame_encoder: `keras.Model` from one image `(batch, H, W, C)` to
            `(batch, d)` features, `(batch, tokens, d)` tokens (mean-pooled) or a
            dict with `"pooled_output"` (e.g. `ImageEncoder`).
        num_frames: int >= 1. Frames per clip (also the size of the temporal
            position table); clips of another length are rejected.
        num_layers: int >= 0. Temporal transformer blocks.
        num_heads: int. Attention heads; must divide `d`.
        intermediate_dim: int or None. Feed-forward width; None = `2 * d`.
        dropout: float in [0, 1).
        pooling: `"mean"` over frames or `"attention"` pooling.
        output_mode: `"pooled"`, `"sequence"` or `"both"` (see Returns).
        activation: str. Feed-forward activation.
        layer_norm_epsilon: float.
        name: str or None. Defaults to a unique `"video_encoder"`.
        dtype: dtype or `keras.DTypePolicy` of the temporal layers.
        **kwargs: other `keras.Model` arguments (`trainable`).

    Call arguments:
        inputs: float videos `(batch, num_frames, H, W, C)` or a dict
            `{"videos": videos}`.
        training: bool. Enables dropout.

    Returns:
        `"pooled"`: `(batch, d)`. `"sequence"`: the per-frame features after
        the temporal blocks, `(batch, num_frames, d)`. `"both"`: a dict
        `{"pooled_output", "sequence_output"}`.

    Example:

    >>> import numpy as np
    >>> from keras_mm.encoders import ImageEncoder
    >>> frames = ImageEncoder(image_shape=(16, 16, 3), patch_size=8, hidden_dim=8,
    ...                       num_layers=0, num_heads=2, intermediate_dim=16)
    >>> encoder = VideoEncoder(frames, num_frames=4, num_heads=2)
    >>> tuple(encoder(np.zeros((2, 4, 16, 16, 3))).shape)
    (2, 8)

    Reference:
        Bertasius et al., 2021, "Is Space-Time Attention All You Need for Video
        Understanding?" (TimeSformer); seed 6.2 (video question answering).
    """

    def __init__(
        self,
        frame_encoder,
        num_frames,
        num_layers=1,
        num_heads=2,
        intermediate_dim=None,
        dropout=0.0,
        pooling="mean",
        output_mode="pooled",
        activation="gelu",
        layer_norm_epsilon=1e-6,
        name=None,
        dtype=None,
        **kwargs,
    ):
        frame_shape = _frame_input(frame_encoder)
        check_int("num_frames", num_frames)
        check_int("num_layers", num_layers, minimum=0)
        check_int("num_heads", num_heads)
        check_int("intermediate_dim", intermediate_dim, allow_none=True)
        dropout = check_rate("dropout", dropout)
        check_choice("pooling", pooling, POOLINGS)
        check_choice("output_mode", output_mode, OUTPUT_MODES)
        layer_norm_epsilon = check_positive_float(
            "layer_norm_epsilon", layer_norm_epsilon
        )
        if pooling == "attention" and num_frames < 2:
            raise ValueError(
                "`pooling='attention'` needs `num_frames` >= 2. Received: "
                f"num_frames={num_frames}"
            )
        activation, activation_config = resolve_activation(activation)
        name = unique_name(name, "video_encoder")

        # === Layers and functional graph, under the encoder's name scope ===
        from keras_hub.layers import PositionEmbedding

        with keras.name_scope(name):
            videos = keras.Input(shape=(num_frames,) + frame_shape, name="videos")
            frames = MergeFrames(name="merge_frames")(videos)
            features = _frame_features(frame_encoder(frames))
            width = features.shape[-1]
            if width is None or width % num_heads:
                raise ValueError(
                    "The frame feature size must be known and divisible by "
                    f"`num_heads`. Received: frame features shape="
                    f"{tuple(features.shape)}, num_heads={num_heads}"
                )
            x = SplitFrames(num_frames, name="split_frames")(features)
            position = PositionEmbedding(
                sequence_length=num_frames, dtype=dtype, name="temporal_embedding"
            )(x)
            x = keras.layers.Add(dtype=dtype, name="temporal_add")([x, position])
            x = keras.layers.Dropout(dropout, dtype=dtype, name="temporal_dropout")(x)
            for block in transformer_blocks(
                num_layers,
                num_heads,
                intermediate_dim or 2 * width,
                dropout,
                activation,
                layer_norm_epsilon,
                dtype,
            ):
                x = block(x)
            sequence = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=dtype, name="final_layer_norm"
            )(x)
            if pooling == "mean":
                pooled = SequencePooling("mean", dtype=dtype, name="pooling")(sequence)
            else:
                pooled = AttentionFusion(
                    units=width, dtype=dtype, name="temporal_attention_pooling"
                )([sequence[:, t] for t in range(num_frames)])
        super().__init__(
            inputs=videos,
            outputs=outputs_for(output_mode, pooled, sequence),
            name=name,
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.frame_encoder = frame_encoder
        self.num_frames = num_frames
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.pooling = pooling
        self.output_mode = output_mode
        self.activation = activation_config
        self.layer_norm_epsilon = layer_norm_epsilon
        self.frame_shape = frame_shape
        self.hidden_dim = width

    _input_key = "videos"

    def _check_inputs(self, inputs):
        videos, shape = self._unpack_input(inputs)
        if len(shape) == 5 and shape[1] not in (None, self.num_frames):
            raise ValueError(
                f"{self.__class__.__name__}: `videos` must have "
                f"num_frames={self.num_frames} frames (axis 1). Received: videos "
                f"shape={shape}"
            )
        expected = (None, self.num_frames) + self.frame_shape
        if not shape_matches(shape, expected):
            raise self._input_error(
                f"a float tensor of shape {expected} (batch, frames, H, W, C)", videos
            )
        return videos

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "frame_encoder": keras.layers.serialize(self.frame_encoder),
                "num_frames": self.num_frames,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "pooling": self.pooling,
                "output_mode": self.output_mode,
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("frame_encoder"), dict):
            config["frame_encoder"] = keras.layers.deserialize(
                config["frame_encoder"], custom_objects=custom_objects
            )
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
