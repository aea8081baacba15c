"""Private helpers: read a Hugging Face checkpoint directory with NumPy only.

`read_checkpoint(directory)` returns the parsed `config.json` and every tensor of
`model.safetensors` (or of the shards listed in `model.safetensors.index.json`) as
float32 / integer NumPy arrays, through `safetensors.numpy`; no torch is needed.
NumPy has no bfloat16, so a bfloat16 checkpoint is read by a small reader of the
(documented, trivial) safetensors layout instead: an 8-byte little-endian header
size, a JSON header of `{name: {dtype, shape, data_offsets}}`, then the bytes.

`WeightMap` hands tensors out by name, converts Hugging Face layouts to Keras ones
and, at the end, checks that every tensor was used and every variable was set.
"""

import json
import os
import struct

import numpy as np

_NUMPY_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}


def _read_raw_safetensors(path):
    """All tensors of a safetensors file, bfloat16 widened to float32."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    tensors = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[start:end]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype("<u4") << 16
            array = bits.view("<f4")
        elif info["dtype"] in _NUMPY_DTYPES:
            array = np.frombuffer(raw, dtype=_NUMPY_DTYPES[info["dtype"]])
        else:
            raise ValueError(
                f"Unsupported safetensors dtype {info['dtype']!r} for {key!r} in "
                f"{path}. Received: dtype={info['dtype']!r}"
            )
        tensors[key] = array.reshape(info["shape"])
    return tensors


def read_safetensors(path):
    from safetensors.numpy import load_file

    try:
        tensors = load_file(path)
    except TypeError:  # bfloat16 without ml_dtypes: not a NumPy dtype.
        tensors = _read_raw_safetensors(path)
    # Floats (float16, and bfloat16 when ml_dtypes has registered it with NumPy,
    # whose dtype kind is "V") become float32; integers and booleans stay.
    return {
        k: np.asarray(v) if v.dtype.kind in "biu" else v.astype("float32")
        for k, v in tensors.items()
    }


def read_checkpoint(directory):
    """`(config, tensors)` of a Hugging Face checkpoint directory."""
    config_path = os.path.join(directory, "config.json")
    if not os.path.isfile(config_path):
        raise ValueError(
            f"{directory!r} is not a Hugging Face checkpoint directory: it has no "
            f"config.json. Received: path={directory!r}"
        )
    with open(config_path) as f:
        config = json.load(f)
    index = os.path.join(directory, "model.safetensors.index.json")
    single = os.path.join(directory, "model.safetensors")
    if os.path.isfile(single):
        files = [single]
    elif os.path.isfile(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        files = [os.path.join(directory, shard) for shard in shards]
    else:
        present = sorted(os.listdir(directory))
        raise ValueError(
            f"{directory!r} has no model.safetensors (or sharded "
            "model.safetensors.index.json). keras_mm reads safetensors only; convert "
            "a pytorch_model.bin once with transformers: "
            "`CLIPModel.from_pretrained(path).save_pretrained(path, "
            f"safe_serialization=True)`. Received: files={present}"
        )
    tensors = {}
    for path in files:
        tensors.update(read_safetensors(path))
    return config, tensors


class WeightMap:
    """Assign Hugging Face tensors to Keras variables by path, checking shapes.

    Args:
        tensors: dict of NumPy arrays keyed by Hugging Face name.
        source: str. Where they come from, for error messages.
        ignore: names that are buffers, not weights (e.g. `position_ids`).
    """

    def __init__(self, tensors, source, ignore=()):
        self.tensors = {k: v for k, v in tensors.items() if k not in ignore}
        self.source = source
        self.used = set()

    def get(self, key):
        if key not in self.tensors:
            raise ValueError(
                f"{self.source} has no tensor {key!r}; it is not the checkpoint of "
                "the expected architecture (or uses another naming). Received: "
                f"{len(self.tensors)} tensors, e.g. {sorted(self.tensors)[:5]}"
            )
        self.used.add(key)
        return self.tensors[key]

    def assign(self, variables, path, value, key):
        variable = variables.pop(path, None)
        if variable is None:
            raise ValueError(f"Internal error: no variable {path!r} for {key!r}.")
        value = np.asarray(value)
        if tuple(variable.shape) != value.shape:
            raise ValueError(
                f"{self.source}: {key!r} has shape {value.shape} but the Keras "
                f"variable {path!r} needs {tuple(variable.shape)}; the config does "
                "not describe these weights. Received: shape="
                f"{value.shape}"
            )
        variable.assign(value)

    def linear(self, variables, path, key, reshape=None):
        """A PyTorch `Linear` (`weight (out, in)`, `bias`) into a Keras kernel."""
        kernel = self.get(f"{key}.weight").T
        bias = self.get(f"{key}.bias")
        if reshape == "heads_out":  # (in, heads, head_dim), bias (heads, head_dim)
            shape = tuple(variables[f"{path}/kernel"].shape)
            kernel = kernel.reshape(shape)
            bias = bias.reshape(shape[1:])
        elif reshape == "heads_in":  # (heads, head_dim, out)
            kernel = kernel.reshape(tuple(variables[f"{path}/kernel"].shape))
        self.assign(variables, f"{path}/kernel", kernel, key)
        self.assign(variables, f"{path}/bias", bias, key)

    def layer_norm(self, variables, path, key):
        self.assign(variables, f"{path}/gamma", self.get(f"{key}.weight"), key)
        self.assign(variables, f"{path}/beta", self.get(f"{key}.bias"), key)

    def attention(self, variables, path, key, names=("q_proj", "k_proj", "v_proj")):
        for keras_name, hf_name in zip(("query", "key", "value"), names):
            self.linear(
                variables, f"{path}/{keras_name}", f"{key}.{hf_name}", "heads_out"
            )
        self.linear(
            variables, f"{path}/attention_output", f"{key}.out_proj", "heads_in"
        )

    def check_variables(self, variables):
        """Raise unless every variable of a tower was set (popped)."""
        if variables:
            raise ValueError(
                f"{self.source}: no weights for the Keras variables "
                f"{sorted(variables)}. Received: {len(self.tensors)} tensors"
            )

    def check_unused(self):
        """Raise unless every tensor of the checkpoint was used."""
        unused = sorted(set(self.tensors) - self.used)
        if unused:
            raise ValueError(
                f"{self.source} has tensors that the converted model does not use: "
                f"{unused[:8]}{' ...' if len(unused) > 8 else ''}; the checkpoint is "
                "not the expected architecture. Received: "
                f"{len(unused)} unused tensors"
            )


def keras_variables(model):
    """`{path: variable}` of a freshly built keras-hub backbone (unscoped paths)."""
    variables = {}
    for variable in model.weights:
        if variable.path in variables:
            raise ValueError(f"Internal error: duplicate variable path {variable.path}")
        variables[variable.path] = variable
    return variables
