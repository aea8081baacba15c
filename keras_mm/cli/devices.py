"""The devices and processes of a `keras-mm train` run, configured.

`Runtime(plan)` sets up the backend for a `distributed.Plan` (the engine calls
live in `keras_mm.distribute`) and gives the training code its scopes: where
the model is built, compiled and fitted, and each process's rows of the data.
"""

import contextlib
import os

from keras_mm.cli.parser import UsageError


class Runtime:
    """A configured `Plan`: the scopes and the data of each process."""

    def __init__(self, plan):
        self.plan = plan
        self.strategy = None  # TensorFlow
        self.distribution = None  # JAX

    # ------------------------------------------------------------ configure
    def configure(self):
        """Set up this process's devices; False when it must run afresh."""
        plan = self.plan
        if plan.backend == "jax":
            return self._configure_jax()
        if plan.backend == "tensorflow":
            return self._configure_tensorflow()
        return self._configure_torch()

    def _configure_jax(self):
        from keras_mm.distribute import jax_processes

        plan = self.plan
        if jax_processes.backends_started() and plan.processes > 1:
            return False
        jax_processes.use_cpu_devices(plan.devices)  # CPU only; before start
        if plan.processes > 1:
            jax_processes.initialize(plan.coordinator, plan.processes, plan.process_id)
        try:
            self.distribution = jax_processes.data_parallel(plan.devices)
        except ValueError:
            if jax_processes.accelerators():
                raise UsageError(
                    f"--devices {plan.devices}: this machine has "
                    f"{len(jax_processes.accelerators())} accelerators"
                ) from None
            return False  # the CPU was split before: run afresh
        return True

    def _configure_tensorflow(self):
        from keras_mm.distribute import tensorflow_devices as tfd

        plan = self.plan
        if plan.processes > 1:
            if plan.devices > 1 and not tfd.gpus():
                raise UsageError(
                    "MultiWorkerMirroredStrategy runs one replica per process on "
                    "CPU: leave --devices at 1"
                )
            if plan.source == "flags":
                host, _, port = plan.coordinator.rpartition(":")
                os.environ["TF_CONFIG"] = tfd.tf_config(
                    host, int(port), plan.processes, plan.process_id
                )
            try:
                self.strategy = tfd.multi_worker_strategy()
            except RuntimeError:  # collectives must be set up before any op
                return False
            return True
        if not tfd.gpus() and not tfd.use_cpu_devices(plan.devices):
            return False
        try:
            self.strategy = tfd.mirrored_strategy(plan.devices)
        except ValueError as error:
            raise UsageError(f"--devices {plan.devices}: {error}") from None
        return True

    def _configure_torch(self):
        from keras_mm.distribute import torch_ddp

        plan = self.plan
        if plan.source == "flags":
            host, _, port = plan.coordinator.rpartition(":")
            os.environ.update(
                RANK=str(plan.process_id),
                WORLD_SIZE=str(plan.processes),
                MASTER_ADDR=host,
                MASTER_PORT=port,
            )
        torch_ddp.init_from_env()
        return True

    # ------------------------------------------------------------- training
    @property
    def chief(self):
        return self.plan.chief

    def scope(self):
        """Where the model is built, compiled and fitted."""
        if self.strategy is not None:
            return self.strategy.scope()
        if self.distribution is not None:
            return self.distribution.scope()
        return contextlib.nullcontext()

    def fit_scope(self, model):
        """Around `model.fit`: torch's `DistributedDataParallel`."""
        if self.plan.backend == "torch" and self.plan.processes > 1:
            from keras_mm.distribute import torch_ddp

            return torch_ddp.data_parallel(model)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def quiet(self):
        """Processes other than 0 print nothing on stdout."""
        if self.chief:
            yield
            return
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            yield

    def process_data(self, data, batch_size):
        """This process's rows of every global batch (multi-process JAX, torch).

        TensorFlow's strategies split the global batches themselves.
        """
        plan = self.plan
        if plan.processes == 1 or plan.backend == "tensorflow":
            return data
        import keras

        from keras_mm.distribute import process_data

        if isinstance(data, keras.utils.PyDataset):
            return process_data.ProcessBatches(data, plan.process_id, plan.processes)
        return process_data.process_dataset(
            data, batch_size, plan.process_id, plan.processes
        )

    def describe(self):
        """One line on the devices and processes, or None for one device."""
        plan = self.plan
        if plan.single:
            return None
        if self.strategy is not None:
            devices = self.strategy.extended.worker_devices
            engine = type(self.strategy).__name__
            if plan.processes > 1:  # its alias CollectiveAllReduceStrategy
                engine = "MultiWorkerMirroredStrategy"
        elif self.distribution is not None:
            devices = [str(d) for d in self.distribution.device_mesh.devices]
            engine = "keras.distribution.DataParallel"
        else:
            devices = [f"process {i}" for i in range(plan.processes)]
            engine = "torch DistributedDataParallel"
        text = f"data-parallel on {plan.total_devices} devices"
        if plan.processes > 1:
            text += f" in {plan.processes} processes"
        shown = ", ".join(str(d).rsplit("/", 1)[-1] for d in devices)
        return f"{text} ({engine}): {shown}"

    def check_batch(self, batch_size):
        total = self.plan.total_devices
        if batch_size % total:
            raise UsageError(
                f"the global batch of {batch_size} rows (fewer captions than "
                f"--batch-size) cannot be split evenly over {total} devices"
            )

    def record(self, config):
        """Write the devices and processes into the run configuration."""
        config["devices"] = self.plan.total_devices
        config["processes"] = self.plan.processes
        config["device_batch_size"] = config["batch_size"] // self.plan.total_devices
        if self.plan.single:
            config.pop("parallelism", None)
        else:
            config["parallelism"] = self.describe()
        return config
