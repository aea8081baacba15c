"""Dispatch of the `keras-mm` commands and their error handling.

Errors a user can fix (bad arguments, missing or malformed files, a diverged
run) print one line on stderr and return a non-zero exit code; set
`KERAS_MM_DEBUG=1` to get the traceback of a ValueError or OSError instead.
"""

import logging
import os
import sys

from keras_mm.cli.parser import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    UsageError,
    make_parser,
)


class RunError(Exception):
    """A command failed for a reason the user can fix; one line, exit code 1."""

    def __init__(self, message, exit_code=EXIT_FAILURE):
        super().__init__(message)
        self.exit_code = exit_code


def _one_line(error):
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _fail(command, message, code):
    print(f"keras-mm {command}: error: {message}", file=sys.stderr)
    return code


def _train(args, argv):
    import keras

    from keras_mm.cli import distributed

    code = distributed.start(args, argv, keras.backend.backend())
    if code is not None:  # ran in other processes (torch), or afresh
        return code
    from keras_mm.cli.training import train

    try:
        return train(args)
    finally:
        distributed.finish()


def run(argv):
    """Parse `argv` and run the command in this process; return the exit code."""
    # TensorFlow's Python warnings (e.g. tf.function retracing in `predict` of
    # new tower models) are noise here; errors still show.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    command = args.command
    from keras_mm.cli.quiet import import_quietly

    import_quietly()
    try:
        if command == "train":
            return _train(args, argv)
        if command == "evaluate":
            from keras_mm.cli.evaluation import evaluate

            return evaluate(args)
        if command == "classify":
            from keras_mm.cli.classifying import classify

            return classify(args)
        if command in ("index", "search"):
            from keras_mm.cli import indexing

            return getattr(indexing, command)(args)
        if command == "generate":
            from keras_mm.cli.generating import generate

            return generate(args)
        from keras_mm.cli.exporting import export

        return export(args)
    except UsageError as error:
        return _fail(command, _one_line(error), EXIT_USAGE)
    except RunError as error:
        return _fail(command, _one_line(error), error.exit_code)
    except (ValueError, OSError) as error:
        # Readers and models raise ValueError naming the file, record or argument.
        if os.environ.get("KERAS_MM_DEBUG"):
            raise
        return _fail(command, _one_line(error), EXIT_FAILURE)
    except KeyboardInterrupt:
        message = "interrupted"
        if command == "train":
            message += "; `keras-mm train --resume` continues from the last checkpoint"
        elif command == "index":
            message += "; no index was written (run `keras-mm index` again)"
        return _fail(command, message, EXIT_INTERRUPTED)
