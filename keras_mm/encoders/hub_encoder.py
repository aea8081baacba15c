import keras
from keras import ops

from keras_mm.api_export import keras_mm_export
from keras_mm.encoders.encoder_utils import (
    OUTPUT_MODES,
    BaseEncoder,
    SequencePooling,
    check_choice,
    check_int,
    outputs_for,
    shape_matches,
    unique_name,
)
from keras_mm.encoders.text_encoder import check_text_inputs, text_input_shapes

POOLINGS = ("first", "last", "mean", "max", "argmax", "backbone")
_TEXT_KEYS = ("token_ids", "padding_mask", "segment_ids")


def _backbone_inputs(backbone):
    struct = getattr(backbone, "_inputs_struct", None)
    if struct is None:
        try:
            struct = backbone.input
        except (AttributeError, ValueError):
            struct = None
    if isinstance(struct, (list, tuple)) and len(struct) == 1:
        struct = struct[0]
    if struct is None or (isinstance(struct, (list, tuple))):
        raise ValueError(
            "`backbone` must be a functional Keras model (e.g. a keras-hub backbone) "
            "with one tensor input or a dict input. Received: backbone="
            f"{getattr(backbone, 'name', backbone)!r} with inputs {struct!r}"
        )
    return struct


def _split_outputs(outputs):
    """Return `(sequence or None, pooled or None)` from a backbone's outputs."""
    if isinstance(outputs, dict):
        return outputs.get("sequence_output"), outputs.get("pooled_output")
    if isinstance(outputs, (list, tuple)):
        outputs = outputs[0]
    if len(outputs.shape) == 3:
        return outputs, None
    if len(outputs.shape) == 2:
        return None, outputs
    raise ValueError(
        "`backbone` must return a (batch, tokens, d) sequence, a (batch, d) vector "
        "or a dict with 'sequence_output' and/or 'pooled_output'. Received: output "
        f"shape={tuple(outputs.shape)}"
    )


def _auto_pooling(backbone, sequence, pooled):
    import keras_hub

    if sequence is None or pooled is not None:
        return "backbone"  # e.g. BERT's pooled_output (tanh dense on [CLS]).
    if isinstance(backbone, keras_hub.models.CLIPTextEncoder):
        return "argmax"  # CLIP pools the end-of-text token, the largest id.
    if isinstance(backbone, keras_hub.models.ViTBackbone):
        return "first" if backbone.use_class_token else "mean"
    if isinstance(backbone, keras_hub.models.CLIPVisionEncoder):
        return "first"
    return "mean"


def _scope_variable_paths(backbone, scope):
    """Prefix the backbone's variable paths with `scope/`.

    Keras' torch backend registers a model's variables as torch parameters keyed
    by `variable.path`; two backbones built outside any name scope (two keras-hub
    `CLIPTextEncoder`s, say) share every path, so one of each pair would be left
    out of `parameters()` and `zero_grad()`, and its gradients would accumulate.
    Paths are fixed when a variable is created, hence the rename; it changes
    nothing else (saving matches weights by layer structure, not by path).
    """
    prefix = scope + "/"
    for variable in backbone.variables:
        if not variable.path.startswith(prefix):
            variable._path = prefix + variable.path


@keras_mm_export("keras_mm.encoders.HubEncoder")
class HubEncoder(BaseEncoder):
    """Adapts a keras-hub backbone (or any functional model) to keras_mm's encoders.

    Gives a backbone the input and output conventions of `ImageEncoder` /
    `TextEncoder`: images in (a tensor, or `{"images"}`), or text as
    `{"token_ids", "padding_mask"}` (mask optional, `segment_ids` filled with
    zeros when the backbone takes them); a pooled `(batch, d)` vector out (or the
    token sequence). Tested with keras-hub's `ViTBackbone`, `CLIPVisionEncoder`,
    `BertBackbone` and `CLIPTextEncoder`; other backbones with a `token_ids` dict
    input or a single tensor input and a sequence output work the same way.

    The backbone is used as it is (not copied): train `encoder` and `backbone`
    changes too. Its variable paths get the prefix `"<name>/"`, so two backbones
    of the same class can be nested in one model and, on torch, every variable is
    a registered parameter.

    Args:
        backbone: a functional `keras.Model`, e.g. a keras-hub backbone built with
            random weights or `from_preset`.
        pooling: None (automatic), `"first"`, `"last"` (last non-padding token),
            `"mean"` (over non-padding tokens), `"max"`, `"argmax"` (the token at
            `argmax(token_ids)`: CLIP's end-of-text pooling) or `"backbone"` (the
            backbone's own pooled output). Automatic: `"backbone"` when the
            backbone returns a pooled output (`BertBackbone`'s `pooled_output`,
            so that every weight trains); `"argmax"` for `CLIPTextEncoder`;
            `"first"` for `CLIPVisionEncoder` and `ViTBackbone` with a class
            token; `"mean"` otherwise.
        output_mode: `"pooled"`, `"sequence"` or `"both"` (dict
            `{"pooled_output", "sequence_output"}`).
        pad_token_id: int. Id marking padding when no `padding_mask` is given
            (text backbones). keras-hub's CLIP tokenizer pads with 0 unless
            `pad_with_end_token=True`; passing the preprocessor's `padding_mask`
            is always right.
        name: str or None. Defaults to a unique `"hub_encoder"`, ...
        **kwargs: other `keras.Model` arguments (`trainable`).

    Call arguments:
        inputs: for an image backbone, `(batch, H, W, C)` images or
            `{"images": ...}`; for a text backbone, `{"token_ids", "padding_mask"}`
            (`padding_mask` optional, default `token_ids != pad_token_id`) or
            bare token ids.
        training: bool.

    Returns:
        `(batch, d)` pooled features, `(batch, tokens, d)` or both (see
        `output_mode`).

    Example:

    >>> import numpy as np, keras_hub
    >>> vit = keras_hub.models.ViTBackbone(image_shape=(16, 16, 3), patch_size=4,
    ...     num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16)
    >>> encoder = HubEncoder(vit)
    >>> tuple(encoder(np.zeros((2, 16, 16, 3))).shape)
    (2, 8)

    Reference:
        keras-hub backbones, https://keras.io/keras_hub/api/models/.
    """

    def __init__(
        self,
        backbone,
        pooling=None,
        output_mode="pooled",
        pad_token_id=0,
        name=None,
        **kwargs,
    ):
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        if not isinstance(backbone, keras.Model):
            raise ValueError(
                "`backbone` must be a keras.Model. Received: backbone of type "
                f"{type(backbone).__name__}"
            )
        if pooling is not None:
            check_choice("pooling", pooling, POOLINGS)
        check_choice("output_mode", output_mode, OUTPUT_MODES)
        check_int("pad_token_id", pad_token_id, minimum=0)
        struct = _backbone_inputs(backbone)
        text = isinstance(struct, dict) and "token_ids" in struct
        if isinstance(struct, dict) and not text:
            if len(struct) != 1:
                raise ValueError(
                    "`backbone` must take a single tensor, a dict with one key, or "
                    "a dict with 'token_ids' (and optionally 'padding_mask', "
                    f"'segment_ids'). Received: input keys {sorted(struct)}"
                )
        if text and not set(struct) <= set(_TEXT_KEYS):
            raise ValueError(
                f"`backbone` text inputs must be among {list(_TEXT_KEYS)}. Received: "
                f"input keys {sorted(struct)}"
            )
        name = unique_name(name, "hub_encoder")
        dtype = backbone.dtype_policy
        _scope_variable_paths(backbone, name)

        # === Functional graph ===
        if text:
            token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
            padding_mask = keras.Input(shape=(None,), dtype="bool", name="padding_mask")
            inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
            feed = {"token_ids": token_ids}
            if "padding_mask" in struct:
                feed["padding_mask"] = ops.cast(
                    padding_mask, struct["padding_mask"].dtype
                )
            if "segment_ids" in struct:
                feed["segment_ids"] = ops.zeros_like(token_ids)
            outputs = backbone(feed)
        else:
            spec = next(iter(struct.values())) if isinstance(struct, dict) else struct
            key = next(iter(struct)) if isinstance(struct, dict) else None
            inputs = keras.Input(
                shape=tuple(spec.shape[1:]), dtype=spec.dtype, name=key or "images"
            )
            outputs = backbone({key: inputs} if key else inputs)
            token_ids = padding_mask = None
        sequence, pooled = _split_outputs(outputs)
        if pooling is None:
            pooling = _auto_pooling(backbone, sequence, pooled)
        if pooling == "backbone" and pooled is None:
            raise ValueError(
                "`pooling='backbone'` needs a backbone with a pooled output. "
                f"Received: backbone={backbone.name!r} returning a sequence only"
            )
        if pooling != "backbone" and sequence is None:
            raise ValueError(
                f"`pooling={pooling!r}` needs a backbone with a sequence output; "
                f"this one returns vectors only: use pooling='backbone'. Received: "
                f"backbone={backbone.name!r}"
            )
        if pooling == "argmax" and not text:
            raise ValueError(
                "`pooling='argmax'` needs a text backbone (it pools at "
                f"argmax(token_ids)). Received: backbone={backbone.name!r}"
            )
        if output_mode != "pooled" and sequence is None:
            raise ValueError(
                f"`output_mode={output_mode!r}` needs a backbone with a sequence "
                f"output. Received: backbone={backbone.name!r}"
            )
        if pooling != "backbone":
            pooled = SequencePooling(pooling, dtype=dtype, name="pooling")(
                sequence, padding_mask=padding_mask, token_ids=token_ids
            )
        super().__init__(
            inputs=inputs,
            outputs=outputs_for(output_mode, pooled, sequence),
            name=name,
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.backbone = backbone
        self.pooling = pooling
        self.output_mode = output_mode
        self.pad_token_id = pad_token_id
        self.modality = "text" if text else "tensor"
        self._hub_input_key = None if text else (key or "images")
        self._hub_input_shape = None if text else tuple(spec.shape[1:])
        self._hub_max_length = getattr(backbone, "max_sequence_length", None)

    def _check_inputs(self, inputs):
        if self.modality == "text":
            max_length = (
                self._hub_max_length if isinstance(self._hub_max_length, int) else None
            )
            return check_text_inputs(
                self.__class__.__name__, inputs, self.pad_token_id, max_length
            )
        tensor, shape = self._unpack_input(inputs)
        expected = (None,) + self._hub_input_shape
        if not shape_matches(shape, expected):
            raise self._input_error(f"a tensor of shape {expected}", tensor)
        return tensor

    @property
    def _input_key(self):
        return self._hub_input_key

    def _input_shape_struct(self, input_shape):
        if self.modality == "text":
            return text_input_shapes(input_shape)
        return super()._input_shape_struct(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "pooling": self.pooling,
                "output_mode": self.output_mode,
                "pad_token_id": self.pad_token_id,
            }
        )
        config.pop("dtype")  # The backbone's policy.
        return config
