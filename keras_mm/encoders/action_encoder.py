import keras

from keras_mm.api_export import keras_mm_export
from keras_mm.encoders.encoder_utils import (
    OUTPUT_MODES,
    BaseEncoder,
    SequencePooling,
    check_choice,
    check_heads,
    check_int,
    check_positive_float,
    check_rate,
    outputs_for,
    resolve_activation,
    shape_matches,
    transformer_blocks,
    unique_name,
)


@keras_mm_export("keras_mm.encoders.ActionEncoder")
class ActionEncoder(BaseEncoder):
    """A small encoder of continuous actions or short action trajectories.

    With `max_sequence_length=None` the input is one action vector per example,
    `(batch, action_dim)`: a `Dense` projection to `hidden_dim` followed by
    `num_layers` pre-LayerNorm residual MLP blocks (`x + W_2 act(W_1 LN(x))`) and
    a final LayerNorm. With an integer `max_sequence_length` the input is a
    trajectory `(batch, T, action_dim)`, `T <= max_sequence_length`: a `Dense`
    projection, learned position embeddings, `num_layers` pre-LayerNorm
    transformer blocks (keras-hub's `TransformerEncoder`), a final LayerNorm and
    pooling over time. The action tower of the seed's VLMP/VLMAP models
    (sections 3.1.3, 3.2.3).

    Args:
        action_dim: int. Size of one action vector.
        max_sequence_length: int or None. None for single action vectors, else
            the longest trajectory accepted.
        hidden_dim: int. Feature width; divisible by `num_heads` for
            trajectories.
        num_layers: int. Number of MLP or transformer blocks (>= 0).
        num_heads: int. Attention heads per block (trajectories only).
        intermediate_dim: int. Width of the blocks' hidden layer.
        dropout: float in [0, 1). Dropout in the blocks.
        pooling: `"mean"`, `"first"` or `"last"` time step (trajectories only).
        output_mode: `"pooled"`, `"sequence"` or `"both"` (see Returns).
        activation: str or callable. Hidden activation of the blocks: a Keras
            name, `"quick_gelu"` or a function.
        layer_norm_epsilon: float. Epsilon of every LayerNormalization.
        name: str or None. Defaults to a unique `"action_encoder"`, ...
        dtype: dtype or `keras.DTypePolicy` (e.g. `"mixed_bfloat16"`).
        **kwargs: other `keras.Model` arguments (`trainable`).

    Call arguments:
        inputs: float actions `(batch, action_dim)`, or trajectories
            `(batch, T, action_dim)` when `max_sequence_length` is set; or a
            dict `{"actions": ...}`.
        training: bool. Enables dropout.

    Returns:
        `output_mode="pooled"`: `(batch, hidden_dim)`. `"sequence"`: per-step
        features `(batch, T, hidden_dim)` (`T = 1` for single vectors).
        `"both"`: a dict `{"pooled_output", "sequence_output"}`.

    Example:

    >>> import numpy as np
    >>> encoder = ActionEncoder(action_dim=7, hidden_dim=8)
    >>> tuple(encoder(np.zeros((2, 7))).shape)
    (2, 8)
    >>> encoder = ActionEncoder(action_dim=7, max_sequence_length=4, hidden_dim=8,
    ...                         num_heads=2, intermediate_dim=16)
    >>> tuple(encoder(np.zeros((2, 4, 7))).shape)
    (2, 8)

    Reference:
        Brohan et al., 2023 (RT-2); seed sections 3.1.3, 3.2.3.
    """

    def __init__(
        self,
        action_dim,
        max_sequence_length=None,
        hidden_dim=64,
        num_layers=2,
        num_heads=4,
        intermediate_dim=128,
        dropout=0.0,
        pooling="mean",
        output_mode="pooled",
        activation="gelu",
        layer_norm_epsilon=1e-6,
        name=None,
        dtype=None,
        **kwargs,
    ):
        check_int("action_dim", action_dim)
        check_int("max_sequence_length", max_sequence_length, allow_none=True)
        check_int("hidden_dim", hidden_dim)
        check_int("num_layers", num_layers, minimum=0)
        if max_sequence_length is None:
            check_int("num_heads", num_heads)
        else:
            check_heads(hidden_dim, num_heads)
        check_int("intermediate_dim", intermediate_dim)
        dropout = check_rate("dropout", dropout)
        check_choice("pooling", pooling, ("mean", "first", "last"))
        check_choice("output_mode", output_mode, OUTPUT_MODES)
        layer_norm_epsilon = check_positive_float(
            "layer_norm_epsilon", layer_norm_epsilon
        )
        activation, activation_config = resolve_activation(activation)
        name = unique_name(name, "action_encoder")
        trajectory = max_sequence_length is not None

        # === Layers and functional graph, under the encoder's name scope ===
        with keras.name_scope(name):
            shape = (None, action_dim) if trajectory else (action_dim,)
            actions = keras.Input(shape=shape, name="actions")
            x = keras.layers.Dense(hidden_dim, dtype=dtype, name="input_projection")(
                actions
            )
            if trajectory:
                from keras_hub.layers import PositionEmbedding

                position = PositionEmbedding(
                    max_sequence_length, dtype=dtype, name="position_embedding"
                )(x)
                x = keras.layers.Add(dtype=dtype, name="embeddings_add")([x, position])
                for block in transformer_blocks(
                    num_layers,
                    num_heads,
                    intermediate_dim,
                    dropout,
                    activation,
                    layer_norm_epsilon,
                    dtype,
                ):
                    x = block(x)
            else:
                for i in range(num_layers):
                    h = keras.layers.LayerNormalization(
                        epsilon=layer_norm_epsilon, dtype=dtype, name=f"mlp_{i}_norm"
                    )(x)
                    h = keras.layers.Dense(
                        intermediate_dim,
                        activation=activation,
                        dtype=dtype,
                        name=f"mlp_{i}_intermediate",
                    )(h)
                    h = keras.layers.Dense(
                        hidden_dim, dtype=dtype, name=f"mlp_{i}_output"
                    )(h)
                    h = keras.layers.Dropout(
                        dropout, dtype=dtype, name=f"mlp_{i}_dropout"
                    )(h)
                    x = keras.layers.Add(dtype=dtype, name=f"mlp_{i}_add")([x, h])
            x = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=dtype, name="final_layer_norm"
            )(x)
            if trajectory:
                sequence = x
                pooled = SequencePooling(pooling, dtype=dtype, name="pooling")(x)
            else:
                pooled = x
                sequence = keras.layers.Reshape(
                    (1, hidden_dim), dtype=dtype, name="sequence"
                )(x)
        super().__init__(
            inputs=actions,
            outputs=outputs_for(output_mode, pooled, sequence),
            name=name,
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.action_dim = action_dim
        self.max_sequence_length = max_sequence_length
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.pooling = pooling
        self.output_mode = output_mode
        self.activation = activation_config
        self.layer_norm_epsilon = layer_norm_epsilon

    _input_key = "actions"

    def _check_inputs(self, inputs):
        actions, shape = self._unpack_input(inputs, dtype="float32")
        if self.max_sequence_length is None:
            ok = shape_matches(shape, (None, self.action_dim))
            expected = f"a float tensor (batch, {self.action_dim})"
        else:
            ok = shape_matches(shape, (None, None, self.action_dim)) and (
                shape[1] is None or 1 <= shape[1] <= self.max_sequence_length
            )
            expected = (
                f"a float tensor (batch, T, {self.action_dim}) with "
                f"1 <= T <= {self.max_sequence_length}"
            )
        if not ok:
            raise self._input_error(expected, actions)
        return actions

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "action_dim": self.action_dim,
                "max_sequence_length": self.max_sequence_length,
                "hidden_dim": self.hidden_dim,
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
