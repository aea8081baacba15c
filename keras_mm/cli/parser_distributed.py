"""The `--devices` / multi-process options of `keras-mm train`."""


def add_distribution_options(parser, positive_int, non_negative_int):
    group = parser.add_argument_group(
        "devices and processes",
        "Data-parallel training with global negatives; --batch-size is the global "
        "batch, split evenly over all devices (docs/distributed.md).",
    )
    group.add_argument(
        "--devices",
        type=positive_int,
        help="devices of this process (default 1; --resume: the run's): the "
        "first N GPUs, or on a machine without accelerators the CPU split into N "
        "devices (torch: N processes)",
    )
    group.add_argument(
        "--num-processes",
        type=positive_int,
        help="processes of a multi-process job (default 1, or from TF_CONFIG, "
        "torchrun's WORLD_SIZE or KERAS_DISTRIBUTION_NUM_PROCESSES)",
    )
    group.add_argument(
        "--process-id",
        type=non_negative_int,
        help="this process's index in the job; process 0 writes the run directory",
    )
    group.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="address of process 0 (TensorFlow: worker i listens on PORT + i)",
    )
