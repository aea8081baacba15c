"""`keras-mm export`: the trained model as a TensorFlow SavedModel."""

import os
import shutil

import keras

from keras_mm.cli.app import RunError
from keras_mm.cli.checkpoints import MODEL, SAVED_MODEL
from keras_mm.cli.evaluation import load_run
from keras_mm.cli.parser import UsageError
from keras_mm.cli.run_inputs import PREPROCESSOR_DIR, run_inputs
from keras_mm.export import export_saved_model


def _check_writable(path):
    """Create (and remove) `path` once, so an unwritable place fails in one line."""
    try:
        os.makedirs(path)
        os.rmdir(path)
    except OSError as error:
        reason = error.strerror or str(error)
        raise RunError(f"cannot write the SavedModel to {path!r}: {reason}") from None


def _prepare_output(path, overwrite):
    if not os.path.lexists(path):
        _check_writable(path)
        return
    is_saved_model = os.path.isfile(os.path.join(path, "saved_model.pb"))
    if os.path.isdir(path) and not os.listdir(path):
        os.rmdir(path)
    elif not overwrite:
        raise UsageError(f"{path!r} already exists; pass --overwrite to replace it")
    elif is_saved_model:
        shutil.rmtree(path)
    else:
        raise UsageError(
            f"{path!r} exists and is not a SavedModel; refusing to replace it"
        )


def export(args):
    run, config = load_run(args.run)
    output = args.output or run.file(SAVED_MODEL)
    _prepare_output(output, args.overwrite)
    inputs = run_inputs(run, config)
    # Raw-input endpoints: the run's tokenizer (the saved --init preprocessor
    # directory, or the word tokenizer) and image normalisation in the graph.
    text = inputs.text.layer
    if inputs.vocabulary is None:
        text = run.file(PREPROCESSOR_DIR)
    # The `.keras` path, not a loaded model: on torch the export then loads it
    # under TensorFlow only, in a subprocess.
    try:
        endpoints = export_saved_model(
            run.file(MODEL),
            output,
            sequence_length=inputs.sequence_length,
            text_preprocessor=text,
            image_normalization=(inputs.mean, inputs.std),
        )
    except Exception as error:
        if not type(error).__module__.startswith("tensorflow"):
            raise
        # A TensorFlow file-system error (e.g. the disk filled up): one line.
        raise RunError(f"cannot write the SavedModel to {output!r}: {error}") from None
    print(
        f"Exported {run.file(MODEL)} to {output} (backend "
        f"{keras.backend.backend()}); endpoints: {', '.join(endpoints)}"
    )
    print(
        "Serve it with TensorFlow Serving, load it with tf.saved_model.load, or "
        "try:\n  saved_model_cli run --dir "
        f"{output} --tag_set serve --signature_def encode_text_strings "
        "--input_exprs 'texts=[\"a photo of a cat\"]'"
    )
    return 0
