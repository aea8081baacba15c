"""Export a keras_mm model as a TensorFlow SavedModel with serving endpoints.

Run as a module (`python -m keras_mm.export.saved_model MODEL.keras OUT_DIR`) it
loads a `.keras` file and exports it under whatever backend `KERAS_BACKEND`
names; `export_saved_model` uses that on torch, where `ExportArchive` cannot
trace through `torch.export` (Keras 3.15, torch 2.13).
"""

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile

import keras

from keras_mm.api_export import keras_mm_export

# Backends whose `ExportArchive` writes a SavedModel in-process (JAX via jax2tf).
DIRECT_BACKENDS = ("tensorflow", "jax")
# The backend the subprocess exports with when the current one cannot.
FALLBACK_BACKEND = "tensorflow"


def _named_inputs(struct, default_name):
    """`{name: KerasTensor}` of a model input structure (a dict or one tensor)."""
    if isinstance(struct, dict):
        return dict(struct)
    if isinstance(struct, (list, tuple)) and len(struct) == 1:
        struct = struct[0]
    if isinstance(struct, (list, tuple)):
        raise ValueError(
            "`model` must take a dict of inputs or a single tensor to be exported. "
            f"Received: a list of {len(struct)} inputs"
        )
    return {default_name: struct}


def _input_specs(named, sequence_length=None):
    """Named `keras.InputSpec`s with a free batch dimension.

    Other unknown dimensions (the token axis) become `sequence_length` when given.
    The spec names become the input names of the SavedModel signatures.
    """
    specs = []
    for name, tensor in named.items():
        dims = tuple(
            sequence_length if d is None and sequence_length else d
            for d in tensor.shape[1:]
        )
        specs.append(
            keras.InputSpec(shape=(None,) + dims, dtype=str(tensor.dtype), name=name)
        )
    return specs


def _endpoint(fn, named, as_dict, sequence_length):
    """A function of one positional argument per input, with its signature.

    `fn` takes the inputs as a dict (`as_dict`) or as the single tensor.
    """
    names = list(named)

    def endpoint(*args):
        if as_dict:
            return fn(dict(zip(names, args)))
        return fn(args[0])

    endpoint.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    )
    return endpoint, _input_specs(named, sequence_length)


def _model_endpoint(model, output_name, input_name, sequence_length):
    """The endpoint of a functional model: its inputs -> a dict of its outputs.

    A single-tensor input is named `input_name`; a single output `output_name`.
    """
    struct = _inputs_struct(model)

    def call(inputs):
        outputs = model(inputs, training=False)
        return outputs if isinstance(outputs, dict) else {output_name: outputs}

    named = _named_inputs(struct, input_name)
    return _endpoint(call, named, isinstance(struct, dict), sequence_length)


def _inputs_struct(model):
    struct = getattr(model, "_inputs_struct", None)
    if struct is None:
        raise ValueError(
            "`model` must be a functional keras_mm model (built on `keras.Input`) "
            "so that its input signature is known. Received: "
            f"{model.__class__.__name__}"
        )
    return struct


def _has_free_dims(struct):
    dims = [d for t in keras.tree.flatten(struct) for d in tuple(t.shape)[1:]]
    return any(d is None for d in dims)


def _default_sequence_length(model):
    """The text encoder's `max_sequence_length`, if the model has one."""
    encoder = getattr(model, "text_encoder", None)
    length = getattr(encoder, "max_sequence_length", None)
    return length if isinstance(length, int) else None


@keras_mm_export("keras_mm.export.serving_endpoints")
def serving_endpoints(model, sequence_length=None):
    """The endpoints `export_saved_model` writes: name -> (fn, input specs).

    Each fn takes one positional argument per input, in the order and with the
    names of the specs.

    - `"serve"`: the whole model, its dict inputs to its dict outputs.
    - `"encode_image"`: `images` -> `{"image_embeddings"}`, when the model has
      an `image_tower()` (CLIP).
    - `"encode_text"`: the text inputs (`token_ids`, `padding_mask`, ...) ->
      `{"text_embeddings"}`, when the model has a `text_tower()`.
    """
    endpoints = {"serve": _model_endpoint(model, "outputs", "inputs", sequence_length)}
    if hasattr(model, "image_tower"):
        endpoints["encode_image"] = _model_endpoint(
            model.image_tower(), "image_embeddings", "images", sequence_length
        )
    if hasattr(model, "text_tower"):
        endpoints["encode_text"] = _model_endpoint(
            model.text_tower(), "text_embeddings", "token_ids", sequence_length
        )
    return endpoints


def _raw_settings(model, text_preprocessor, image_normalization):
    """`(text_inputs, image_settings)` of the raw-input endpoints (None: none)."""
    text_inputs = image_settings = None
    if text_preprocessor is not None:
        from keras_mm.export.text_inputs import TextInputs, load_text_preprocessor

        if isinstance(text_preprocessor, (str, os.PathLike)):
            text_preprocessor = load_text_preprocessor(os.fspath(text_preprocessor))
        text_inputs = TextInputs(text_preprocessor)
    if image_normalization is not None:
        from keras_mm.data._stream_counts import check_normalization

        mean, std = check_normalization(image_normalization)
        struct = _inputs_struct(model)
        images = struct.get("images") if isinstance(struct, dict) else None
        dims = tuple(images.shape[1:]) if images is not None else ()
        if len(dims) != 3 or dims[0] != dims[1] or dims[0] is None or dims[2] != 3:
            raise ValueError(
                "`image_normalization` needs a model whose `images` input is "
                "square RGB of a fixed size. Received: images shape="
                f"{(None, *dims) if dims else None}"
            )
        image_settings = (int(dims[0]), mean, std)
    return text_inputs, image_settings


def _export_in_process(
    model, filepath, sequence_length, verbose, text_preprocessor=None,
    image_normalization=None,
):  # fmt: skip
    text_inputs, image_settings = _raw_settings(
        model, text_preprocessor, image_normalization
    )
    if text_inputs is not None and sequence_length is None:
        sequence_length = text_inputs.sequence_length
    if (
        keras.backend.backend() == "jax"
        and sequence_length is None
        and _has_free_dims(_inputs_struct(model))
    ):
        # jax2tf traces free dimensions symbolically, and keras-hub's
        # PositionEmbedding cannot compare a symbolic token axis with its
        # table size: export a fixed length instead (the batch stays free).
        sequence_length = _default_sequence_length(model)
        if sequence_length is None:
            raise ValueError(
                "On the JAX backend the token axis must have a fixed size in the "
                "SavedModel signature; pass `sequence_length`. Received: "
                "sequence_length=None for a model with inputs "
                f"{ {k: tuple(v.shape) for k, v in _inputs_struct(model).items()} }"
            )
    endpoints = serving_endpoints(model, sequence_length)
    archive = keras.export.ExportArchive()
    archive.track(model)
    functions = {}
    for name, (fn, specs) in endpoints.items():
        functions[name] = archive.add_endpoint(name, fn, input_signature=specs)
    names = list(endpoints)
    if text_inputs is not None or image_settings is not None:
        from keras_mm.export.raw_inputs import add_raw_endpoints

        specs = {name: specs for name, (_, specs) in endpoints.items()}
        names += add_raw_endpoints(
            archive, functions, specs, text_inputs, image_settings
        )
    # An inference artifact: no traced gradient functions (on JAX, tracing the
    # jax2tf gradients of every endpoint took about half of the export's time).
    import tensorflow as tf

    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    archive.write_out(filepath, options=options, verbose=verbose)
    return names


def _export_in_subprocess(
    keras_file, filepath, backend, sequence_length, verbose, text_preprocessor=None,
    image_normalization=None,
):  # fmt: skip
    """Export a `.keras` file in a fresh interpreter under `backend`.

    Returns the endpoint names the subprocess wrote.
    """
    if text_preprocessor is not None and not isinstance(
        text_preprocessor, (str, os.PathLike)
    ):
        with tempfile.TemporaryDirectory() as tmp:
            text_preprocessor.save_to_preset(tmp)
            return _export_in_subprocess(
                keras_file, filepath, backend, sequence_length, verbose, tmp,
                image_normalization,
            )  # fmt: skip
    env = dict(os.environ, KERAS_BACKEND=backend)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    command = [sys.executable, "-m", "keras_mm.export.saved_model"]
    command += [os.fspath(keras_file), os.fspath(filepath)]
    if sequence_length:
        command += ["--sequence-length", str(sequence_length)]
    if text_preprocessor is not None:
        command += ["--text-preprocessor", os.fspath(text_preprocessor)]
    if image_normalization is not None:
        from keras_mm.data._stream_counts import check_normalization

        mean, std = check_normalization(image_normalization)
        command += ["--image-normalization", json.dumps([mean, std])]
    if verbose:
        command.append("--verbose")
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise RuntimeError(
            f"Exporting {keras_file} under KERAS_BACKEND={backend} in a subprocess "
            f"failed (exit code {result.returncode}):\n{tail}"
        )
    lines = result.stdout.rstrip("\n").splitlines()
    if verbose and lines[:-1]:
        print("\n".join(lines[:-1]))
    return json.loads(lines[-1])


def _check_sequence_length(sequence_length):
    if sequence_length is None:
        return None
    if (
        not isinstance(sequence_length, int)
        or isinstance(sequence_length, bool)
        or sequence_length < 1
    ):
        raise ValueError(
            "`sequence_length` must be None or a positive integer. Received: "
            f"sequence_length={sequence_length!r}"
        )
    return sequence_length


@keras_mm_export("keras_mm.export.export_saved_model")
def export_saved_model(
    model,
    filepath,
    sequence_length=None,
    verbose=False,
    text_preprocessor=None,
    image_normalization=None,
):
    """Write a model as a TensorFlow SavedModel with separate serving endpoints.

    The SavedModel holds the model's variables and these signatures (TF-Serving
    signature defs, and methods of the object `tf.saved_model.load` returns):

    - `serve` (also `serving_default`): the whole model, dict inputs
      (`images`, `token_ids`, `padding_mask`, ...) to its dict outputs
      (`image_embeddings`, `text_embeddings`);
    - `encode_image`: `images` to `{"image_embeddings"}`, for models with an
      `image_tower()` such as `keras_mm.models.CLIP`;
    - `encode_text`: the text inputs (`token_ids`, `padding_mask`) to
      `{"text_embeddings"}`, for models with a `text_tower()`.

    Raw-input endpoints (what a client has; `keras_mm.export.raw_inputs`):

    - `encode_text_strings`: `texts`, a batch of strings, tokenized inside the
      graph by `text_preprocessor`, to `{"text_embeddings"}`;
    - `encode_image_bytes`: `image_bytes`, a batch of encoded JPEG/PNG images,
      decoded, resized (shortest side, bicubic), centre-cropped and normalised
      with `image_normalization` inside the graph, as `ImageTextDataset` does in
      training, to `{"image_embeddings"}`.

    Bad raw inputs (empty strings, bytes that are not JPEG/PNG) raise an
    `InvalidArgumentError` naming the endpoint and the input.

    Every endpoint runs in inference mode with a free batch dimension; no
    gradient functions are saved (an artifact to serve, not to train). The
    artifact needs TensorFlow, not Keras, to load and serve.

    On TensorFlow and JAX (through `jax2tf`, with a symbolic batch size) the
    export runs in this process with `keras.export.ExportArchive`. On torch,
    where that path fails inside `torch.export` (Keras 3.15, torch 2.13), the
    model is saved to a temporary `.keras` file that a subprocess with
    `KERAS_BACKEND=tensorflow` loads and exports; a `.keras` file gives the
    same outputs under every backend. (A custom layer that reads the batch
    size as a Python int cannot be traced by `jax2tf`: export its `.keras` file
    with `KERAS_BACKEND=tensorflow python -m keras_mm.export.saved_model`.)

    Args:
        model: a functional keras_mm model (e.g. `keras_mm.models.CLIP`), or
            the path of a `.keras` file holding one.
        filepath: str or path-like. Directory to write the SavedModel to.
        sequence_length: int or None. Fixed size of the token axis in the
            signatures. None keeps it free, except on JAX, where `jax2tf` needs a
            fixed size and the text encoder's `max_sequence_length` is used.
        verbose: bool. Print the endpoints' signatures.
        text_preprocessor: None, a keras-hub tokenizer with a `sequence_length`
            (e.g. `keras_mm.data.make_tokenizer(vocabulary, 16)`), a keras-hub
            text preprocessor (`CLIPPreprocessor`, `SigLIPPreprocessor`), or a
            directory it was saved to with `save_to_preset`. Adds
            `encode_text_strings`; the token axis then has its `sequence_length`.
        image_normalization: None, `"unit"` ([0, 1]), `"clip"`, `"siglip"` or a
            `(mean, std)` pair of 3 floats each for images in [0, 1]. Adds
            `encode_image_bytes` (the model's `images` input must be square).

    Returns:
        The list of endpoint names written, e.g. `["serve", "encode_image",
        "encode_text"]`.

    Example:

    ```python
    export_saved_model(clip, "clip_saved_model", sequence_length=16)
    # Elsewhere, with TensorFlow only:
    served = tf.saved_model.load("clip_saved_model")
    embeddings = served.encode_image(images)["image_embeddings"]
    ```
    """
    filepath = os.fspath(filepath)
    sequence_length = _check_sequence_length(sequence_length)
    direct = keras.backend.backend() in DIRECT_BACKENDS
    if isinstance(model, (str, os.PathLike)):
        keras_file = os.fspath(model)
        if not os.path.isfile(keras_file):
            raise ValueError(
                "`model` must be a Keras model or an existing `.keras` file. "
                f"Received: model={keras_file!r} (no such file)"
            )
        if not direct:
            return _export_in_subprocess(
                keras_file, filepath, FALLBACK_BACKEND, sequence_length, verbose,
                text_preprocessor, image_normalization,
            )  # fmt: skip
        model = keras.saving.load_model(keras_file, compile=False)
    elif not isinstance(model, keras.Model):
        raise ValueError(
            "`model` must be a Keras model or the path of a `.keras` file. "
            f"Received: model of type {type(model).__name__}"
        )
    _inputs_struct(model)
    if direct:
        return _export_in_process(
            model, filepath, sequence_length, verbose, text_preprocessor,
            image_normalization,
        )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        keras_file = os.path.join(tmp, "model.keras")
        model.save(keras_file, include_optimizer=False)
        return _export_in_subprocess(
            keras_file, filepath, FALLBACK_BACKEND, sequence_length, verbose,
            text_preprocessor, image_normalization,
        )  # fmt: skip


def _main(argv):
    parser = argparse.ArgumentParser(
        prog="python -m keras_mm.export.saved_model",
        description="Export a .keras file as a SavedModel (TensorFlow or JAX).",
    )
    parser.add_argument("model")
    parser.add_argument("output")
    parser.add_argument("--sequence-length", type=int, default=None)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--text-preprocessor", default=None)
    parser.add_argument("--image-normalization", type=json.loads, default=None)
    args = parser.parse_args(argv)
    if keras.backend.backend() not in DIRECT_BACKENDS:
        parser.error(
            f"KERAS_BACKEND must be one of {DIRECT_BACKENDS}; got "
            f"{keras.backend.backend()!r}"
        )
    names = export_saved_model(
        args.model,
        args.output,
        args.sequence_length,
        verbose=args.verbose,
        text_preprocessor=args.text_preprocessor,
        image_normalization=args.image_normalization,
    )
    print(json.dumps(names))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
