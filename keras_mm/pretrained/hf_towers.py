"""Private helpers: Hugging Face CLIP / SigLIP weights onto keras-hub's towers.

keras-hub's `CLIPVisionEncoder` / `CLIPTextEncoder` and `SigLIPVisionEncoder` /
`SigLIPTextEncoder` are the architectures of `transformers`' `CLIPModel` and
`SiglipModel` (pre-LN transformer blocks, quick-GELU or tanh-GELU MLPs, CLIP's
class token and causal text mask, SigLIP's attention-pooling head), so a checkpoint
maps onto them tensor by tensor:

- PyTorch `Linear` weights `(out, in)` become Keras kernels `(in, out)`; attention
  projections are reshaped to `MultiHeadAttention`'s `(d, heads, head_dim)` /
  `(heads, head_dim, d)`; SigLIP's pooling head packs q/k/v in one
  `in_proj_weight (3d, d)`, split here.
- The patch convolution `(d, C, p, p)` becomes a channels-last kernel `(p, p, C, d)`.
- Position ids are buffers, not weights: they are set to `arange`.

What differs is returned for the wrapper to fix: the layer-norm epsilon
(`ConvertedHubEncoder`), and CLIP's projections and logit scale (SigLIP's scale
and bias), which live in keras_mm's `CLIP` head.
"""

import re

import numpy as np

from keras_mm.pretrained.hf_checkpoint import WeightMap, keras_variables

CLIP_ACTIVATIONS = {"quick_gelu": "quick_gelu", "gelu": "gelu"}
SIGLIP_ACTIVATIONS = {
    "gelu_pytorch_tanh": "gelu_approximate",
    "gelu_new": "gelu_approximate",
    "gelu_fast": "gelu_approximate",
    "gelu": "gelu",
}
CLIP_VISION = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_channels": 3,
    "image_size": 224,
    "patch_size": 32,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
CLIP_TEXT = {
    "vocab_size": 49408,
    "hidden_size": 512,
    "intermediate_size": 2048,
    "num_hidden_layers": 12,
    "num_attention_heads": 8,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "eos_token_id": 49407,
}
SIGLIP_VISION = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_channels": 3,
    "image_size": 224,
    "patch_size": 16,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6,
    "vision_use_head": True,
}
SIGLIP_TEXT = {
    "vocab_size": 32000,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 64,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6,
    "projection_size": None,
}
# Buffers of the checkpoint, not weights (`_positions` sets them).
_POSITION_IDS = (
    "text_model.embeddings.position_ids",
    "vision_model.embeddings.position_ids",
)
# keras-hub's sublayers of `encoder_block_{i}`, in the order of `_encoder_layers`:
# the layer norm before attention, the attention, the layer norm before the MLP, and
# the MLP's two dense layers.
_CLIP_BLOCK = ("layer_norm_1", "attention", "layer_norm_2", "dense_1", "dense_2")
_SIGLIP_BLOCK = ("layer_norm1", "self_attn", "layer_norm2", "mlp/fc1", "mlp/fc2")


def _sub_config(config, key, defaults):
    sub = dict(defaults)
    sub.update({k: v for k, v in (config.get(key) or {}).items() if v is not None})
    return sub


def _activation(value, table, tower):
    if value not in table:
        raise ValueError(
            f"The {tower} uses hidden_act={value!r}, which keras-hub's encoder does "
            f"not implement; supported: {sorted(table)}. Received: "
            f"hidden_act={value!r}"
        )
    return table[value]


def _transformer_args(config, activations, tower):
    """The keyword arguments of the transformer every keras-hub tower is built on."""
    return {
        "hidden_dim": config["hidden_size"],
        "num_layers": config["num_hidden_layers"],
        "num_heads": config["num_attention_heads"],
        "intermediate_dim": config["intermediate_size"],
        "intermediate_activation": _activation(
            config["hidden_act"], activations, tower
        ),
    }


def _image_shape(vision):
    size = vision["image_size"]
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            raise ValueError(
                f"Only square images are supported. Received: image_size={size}"
            )
        size = size[0]
    return (int(size), int(size), int(vision["num_channels"]))


def _patch_embedding(weights, variables, key, bias):
    kernel = weights.get(f"{key}.weight").transpose(2, 3, 1, 0)
    weights.assign(variables, "embedding/patch_embedding/kernel", kernel, key)
    if bias:
        value = weights.get(f"{key}.bias")
        weights.assign(variables, "embedding/patch_embedding/bias", value, key)


def _positions(variables, path):
    variable = variables.pop(path)
    variable.assign(np.arange(variable.shape[-1]).reshape(variable.shape))


def _embeddings(weights, variables, prefix, names):
    """The `{name}_embedding` tables of a tower's embedding layer."""
    for name in names:
        key = f"{prefix}.embeddings.{name}_embedding.weight"
        path = f"embedding/{name}_embedding/embeddings"
        weights.assign(variables, path, weights.get(key), key)


def _encoder_layers(weights, variables, prefix, num_layers, block):
    """Each `transformers` encoder layer onto keras-hub's `encoder_block_{i}`.

    `block` names the keras-hub sublayers (`_CLIP_BLOCK` or `_SIGLIP_BLOCK`); the
    `transformers` names are the same for CLIP and SigLIP.
    """
    norm_1, attention, norm_2, fc_1, fc_2 = block
    for i in range(num_layers):
        key, path = f"{prefix}.encoder.layers.{i}", f"encoder_block_{i}"
        weights.layer_norm(variables, f"{path}/{norm_1}", f"{key}.layer_norm1")
        weights.attention(variables, f"{path}/{attention}", f"{key}.self_attn")
        weights.layer_norm(variables, f"{path}/{norm_2}", f"{key}.layer_norm2")
        weights.linear(variables, f"{path}/{fc_1}", f"{key}.mlp.fc1")
        weights.linear(variables, f"{path}/{fc_2}", f"{key}.mlp.fc2")


def clip_towers(config, tensors, source, dtype=None):
    """keras-hub CLIP towers holding a `CLIPModel` checkpoint, and the heads."""
    import keras_hub

    vision = _sub_config(config, "vision_config", CLIP_VISION)
    text = _sub_config(config, "text_config", CLIP_TEXT)
    eos = text["eos_token_id"]
    if eos not in (2, text["vocab_size"] - 1):
        raise ValueError(
            f"The text tower pools the first eos_token_id={eos}; keras-hub's CLIP "
            "pools the largest token id, which is the same only when eos_token_id "
            f"is the last id of the vocabulary ({text['vocab_size'] - 1}) or the "
            f"legacy value 2. Received: eos_token_id={eos}"
        )
    weights = WeightMap(tensors, source, ignore=_POSITION_IDS)
    vision_encoder = keras_hub.models.CLIPVisionEncoder(
        patch_size=int(vision["patch_size"]),
        **_transformer_args(vision, CLIP_ACTIVATIONS, "vision tower"),
        image_shape=_image_shape(vision),
        data_format="channels_last",
        dtype=dtype,
    )
    variables = keras_variables(vision_encoder)
    prefix = "vision_model"
    _patch_embedding(weights, variables, f"{prefix}.embeddings.patch_embedding", False)
    key = f"{prefix}.embeddings.class_embedding"
    weights.assign(variables, "embedding/class_embedding", weights.get(key), key)
    _embeddings(weights, variables, prefix, ("position",))
    _positions(variables, "embedding/position_ids")
    weights.layer_norm(variables, "pre_layer_norm", f"{prefix}.pre_layrnorm")
    _encoder_layers(
        weights, variables, prefix, vision["num_hidden_layers"], _CLIP_BLOCK
    )
    weights.layer_norm(variables, "layer_norm", f"{prefix}.post_layernorm")
    weights.check_variables(variables)

    text_encoder = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=text["vocab_size"],
        embedding_dim=text["hidden_size"],
        **_transformer_args(text, CLIP_ACTIVATIONS, "text tower"),
        max_sequence_length=text["max_position_embeddings"],
        dtype=dtype,
    )
    variables = keras_variables(text_encoder)
    prefix = "text_model"
    _embeddings(weights, variables, prefix, ("token", "position"))
    _encoder_layers(weights, variables, prefix, text["num_hidden_layers"], _CLIP_BLOCK)
    weights.layer_norm(variables, "layer_norm", f"{prefix}.final_layer_norm")
    weights.check_variables(variables)
    heads = {
        "loss": "clip",
        "image_projection": weights.get("visual_projection.weight").T,
        "text_projection": weights.get("text_projection.weight").T,
        "log_scale": float(np.reshape(weights.get("logit_scale"), ())),
        "vision_epsilon": float(vision["layer_norm_eps"]),
        "text_epsilon": float(text["layer_norm_eps"]),
    }
    weights.check_unused()
    return vision_encoder, text_encoder, heads


def _siglip_pooling_head(weights, variables, key):
    """`transformers`' attention-pooling head onto keras-hub's `head` layer."""
    # keras-hub's probe is an unnamed weight: "variable", or "variable_N" on
    # TensorFlow once another unnamed one was made in this session.
    probe = [p for p in variables if re.fullmatch(r"head/variable(_\d+)?", p)]
    probe = probe[0] if len(probe) == 1 else "head/variable"
    weights.assign(variables, probe, weights.get(f"{key}.probe"), key)
    packed = weights.get(f"{key}.attention.in_proj_weight")
    packed_bias = weights.get(f"{key}.attention.in_proj_bias")
    dim = packed.shape[-1]
    for i, name in enumerate(("query", "key", "value")):
        path = f"head/attention/{name}"
        shape = tuple(variables[f"{path}/kernel"].shape)
        kernel = packed[i * dim : (i + 1) * dim].T.reshape(shape)
        bias = packed_bias[i * dim : (i + 1) * dim].reshape(shape[1:])
        weights.assign(variables, f"{path}/kernel", kernel, f"{key}.in_proj_weight")
        weights.assign(variables, f"{path}/bias", bias, f"{key}.in_proj_bias")
    weights.linear(
        variables,
        "head/attention/attention_output",
        f"{key}.attention.out_proj",
        "heads_in",
    )
    weights.layer_norm(variables, "head/layernorm", f"{key}.layernorm")
    weights.linear(variables, "head/mlp/fc1", f"{key}.mlp.fc1")
    weights.linear(variables, "head/mlp/fc2", f"{key}.mlp.fc2")


def siglip_towers(config, tensors, source, dtype=None):
    """keras-hub SigLIP towers holding a `SiglipModel` checkpoint, and the heads."""
    import keras_hub

    vision = _sub_config(config, "vision_config", SIGLIP_VISION)
    text = _sub_config(config, "text_config", SIGLIP_TEXT)
    if not vision["vision_use_head"]:
        raise ValueError(
            "The SigLIP vision tower has no attention-pooling head "
            "(vision_use_head=False), so it has no image embedding to convert. "
            "Received: vision_use_head=False"
        )
    weights = WeightMap(tensors, source, ignore=_POSITION_IDS)
    vision_encoder = keras_hub.models.SigLIPVisionEncoder(
        patch_size=int(vision["patch_size"]),
        **_transformer_args(vision, SIGLIP_ACTIVATIONS, "vision tower"),
        layer_norm_epsilon=float(vision["layer_norm_eps"]),
        image_shape=_image_shape(vision),
        data_format="channels_last",
        dtype=dtype,
    )
    variables = keras_variables(vision_encoder)
    prefix = "vision_model"
    _patch_embedding(weights, variables, f"{prefix}.embeddings.patch_embedding", True)
    _embeddings(weights, variables, prefix, ("position",))
    _positions(variables, "embedding/position_ids")
    _encoder_layers(
        weights, variables, prefix, vision["num_hidden_layers"], _SIGLIP_BLOCK
    )
    weights.layer_norm(variables, "post_layer_norm", f"{prefix}.post_layernorm")
    _siglip_pooling_head(weights, variables, f"{prefix}.head")
    weights.check_variables(variables)

    text_encoder = keras_hub.models.SigLIPTextEncoder(
        vocabulary_size=text["vocab_size"],
        embedding_dim=text["hidden_size"],
        **_transformer_args(text, SIGLIP_ACTIVATIONS, "text tower"),
        layer_norm_epsilon=float(text["layer_norm_eps"]),
        max_sequence_length=text["max_position_embeddings"],
        projection_dim=text["projection_size"] or text["hidden_size"],
        dtype=dtype,
    )
    variables = keras_variables(text_encoder)
    prefix = "text_model"
    _embeddings(weights, variables, prefix, ("token", "position"))
    _positions(variables, "embedding/position_ids")
    _encoder_layers(
        weights, variables, prefix, text["num_hidden_layers"], _SIGLIP_BLOCK
    )
    weights.layer_norm(variables, "post_layer_norm", f"{prefix}.final_layer_norm")
    weights.linear(variables, "head", f"{prefix}.head")
    weights.check_variables(variables)
    heads = {
        "loss": "siglip",
        "log_scale": float(np.reshape(weights.get("logit_scale"), ())),
        "logit_bias": float(np.reshape(weights.get("logit_bias"), ())),
        # keras-hub hard-codes 1e-6 for the vision tower's post layer norm.
        "vision_epsilon": float(vision["layer_norm_eps"]),
        "text_epsilon": None,
    }
    weights.check_unused()
    return vision_encoder, text_encoder, heads
