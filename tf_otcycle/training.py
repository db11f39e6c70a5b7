"""Training infrastructure shared by the entry points: strategies, whole-state checkpoints
with automatic resume, TensorBoard image summaries, effective-flag files.

Nothing here reads flags; ``train/*.py`` pass plain values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tf_otcycle.io_utils import atomic_write_bytes, atomic_write_text
from tf_otcycle.schedules import scale_learning_rate


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``'auto'`` (mirrored over all GPUs when more than one, else default), ``'default'``,
    ``'mirrored'``, ``'multi_worker'`` (reads ``TF_CONFIG``) or ``'one_device'`` (first GPU or CPU).

    Call it before any TensorFlow op runs: ``MultiWorkerMirroredStrategy`` configures the
    collective ops at start-up (created later it fails with "Collective ops must be
    configured at program startup"), and listing devices already starts the runtime.
    """
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    raise ValueError(f"strategy: expected auto|default|mirrored|multi_worker|one_device, got {name!r}")


# --threads=auto picks one thread per op below this much work per step (voxels of a training
# sample x filters of the generator's first level), TensorFlow's defaults above it.
AUTO_THREADS_WORK = 2**21


def parse_threads(spec: str, work: int | None = None) -> tuple[int, int] | None:
    """``--threads``: ``'tensorflow'`` -> None (TensorFlow's own choice), ``'INTRA,INTER'`` ->
    those, ``'auto'`` -> ``(1, cores)`` for small steps (``work`` below
    :data:`AUTO_THREADS_WORK`, or unknown) and None for large ones; ``ValueError`` otherwise.

    Measured on 2 CPU cores (``benchmarks/speed.py``, ``benchmarks/RESULTS.md``): one thread
    per op and one op per core runs the many small ops of a GAN step side by side (critics,
    scales, the generator's passes) instead of splitting each over all cores: 1.5x faster at
    the MRI demo size (0.75 vs 0.52 of the matmul peak), 1.7x at the microscopy demo size
    (0.42 vs 0.23); at paper size, where each convolution fills the cores, the two are
    within the run-to-run noise (MRI 8.43 vs 8.42 s, microscopy 7.35 vs 7.22 s per step; an
    earlier run had TensorFlow's defaults 4-7 % faster for MRI), so large steps keep
    TensorFlow's defaults. Only host-side scheduling changes: results are the same, and
    GPUs are unaffected.
    """
    if spec == "tensorflow":
        return None
    if spec == "auto":
        return (1, max(1, os.cpu_count() or 1)) if work is None or work < AUTO_THREADS_WORK else None
    try:
        intra, inter = (int(v) for v in spec.split(","))
    except ValueError:
        intra = inter = -1
    if intra < 0 or inter < 0:
        raise ValueError(f"--threads: expected auto, tensorflow or INTRA,INTER (non-negative, 0 = TensorFlow's "
                         f"choice), got {spec!r}")
    return intra, inter


def set_threads(spec: str, work: int | None = None) -> tuple[int, int] | None:
    """Apply ``--threads`` (see :func:`parse_threads`); before any TensorFlow op runs, as the
    pools are created with the runtime. Returns the ``(intra, inter)`` set, or None."""
    threads = parse_threads(spec, work)
    if threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(threads[1])
    return threads


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes outputs (always, except non-chief multi-workers)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
        return True
    return resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0)


def random_states(model) -> list:
    """The state variables of every ``keras.random.SeedGenerator`` in ``model`` (the gradient
    penalty's interpolation weights, the critics' random crops), in a fixed order."""
    return [v for v in model.variables if v.name == "seed_generator_state"]


class TrainState:
    """Whole training state in one ``tf.train.Checkpoint``: networks, forward operator,
    optimizers (their iteration counters are the step counts), the random generators' states
    (``rng``) and the epoch: with the input pipeline replayed to the step (:mod:`tf_otcycle.run`)
    and op determinism, a resumed run continues exactly as an uninterrupted one.

    Checkpoints go to ``<run_dir>/checkpoints/`` through a ``CheckpointManager`` (TF writes
    the shards first and updates the ``checkpoint`` index last, so an interrupted save never
    replaces the last complete one).
    """

    def __init__(self, model, directory: str | os.PathLike, max_to_keep: int = 3):
        self.model = model
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        parts = {
            "generator": model.generator,
            "forward_op": model.forward_op,
            "critic_x": model.critic_x,
            "g_optimizer": model.g_optimizer,
            "d_optimizer": model.d_optimizer,
            "epoch": self.epoch,
        }
        if model.critic_y is not None:
            parts["critic_y"] = model.critic_y
        for name in ("pool_x", "pool_y"):  # the pools of past fakes (--fake_pool)
            if getattr(model, name, None) is not None:
                parts[name] = getattr(model, name)
        if getattr(model, "h_optimizer", None) is not None:
            parts["h_optimizer"] = model.h_optimizer
        self.checkpoint = tf.train.Checkpoint(**parts, rng=random_states(model))
        self._without_rng = tf.train.Checkpoint(**parts)  # checkpoints written before the rng states were saved
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(directory), max_to_keep=max_to_keep)

    @property
    def step(self) -> int:
        return int(self.model.g_optimizer.iterations.numpy())

    def restore(self, log: Callable[[str], None] = print) -> int:
        """Restore the latest checkpoint if any; return the epoch to start from."""
        latest = self.manager.latest_checkpoint
        if latest is None:
            return 0
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except AssertionError:  # an older checkpoint: no random states; every other object must match
            self._without_rng.restore(latest).assert_existing_objects_matched()
            log(f"{latest} holds no random-generator states (written by an earlier version): they start afresh")
        log(f"Resumed from step {self.step} (epoch {int(self.epoch.numpy())}, {latest})")
        return int(self.epoch.numpy())

    @property
    def current_epoch(self) -> int:
        """Epochs completed (updated by :class:`CheckpointCallback` during training)."""
        return getattr(self, "_current_epoch", int(self.epoch.numpy()))

    @current_epoch.setter
    def current_epoch(self, value: int) -> None:
        self._current_epoch = int(value)

    def save(self, epoch: int) -> str:
        self.epoch.assign(epoch)
        return self.manager.save(checkpoint_number=self.step)


class CheckpointCallback(keras.callbacks.Callback):
    """Save the whole :class:`TrainState` at the end of every ``every`` epochs, at the end, and
    every ``every_steps`` generator steps (0: never mid-epoch; a mid-epoch checkpoint records
    the epochs completed, and the run resumes inside the epoch, see :mod:`tf_otcycle.run`).

    Weights with NaN or Inf are never saved (the last good checkpoint stays the latest).
    """

    def __init__(self, state: TrainState, every: int = 1, write: bool = True,
                 log: Callable[[str], None] = logging.warning,
                 every_steps: int = 0):
        super().__init__()
        self.state, self.every, self.write, self.log = state, max(1, every), write, log
        self.every_steps = max(0, int(every_steps or 0))
        self.error: str | None = None  # set when a checkpoint could not be written (training then stops)

    def on_epoch_begin(self, epoch, logs=None):
        self.state.current_epoch = epoch  # epochs completed, for a save inside this epoch

    def on_train_batch_end(self, batch, logs=None):
        if not (self.write and self.every_steps and self.state.step % self.every_steps == 0):
            return
        epoch_end = bool(self.params) and batch + 1 == self.params.get("steps")
        if epoch_end and self._epoch_save_due(self.state.current_epoch):
            return  # the epoch's last step: the end-of-epoch save follows (one checkpoint per step number)
        self._save(self.state.current_epoch, f"step {self.state.step}")

    def _epoch_save_due(self, epoch: int) -> bool:
        return (epoch + 1) % self.every == 0 or (bool(self.params) and epoch + 1 == self.params.get("epochs"))

    def on_epoch_end(self, epoch, logs=None):
        self.state.current_epoch = epoch + 1
        if self.write and self._epoch_save_due(epoch):
            self._save(epoch + 1, f"epoch {epoch + 1}")

    def _save(self, epochs_done: int, when: str) -> None:
        if not weights_finite(self.state.model):
            self.log(f"{when}: weights hold NaN or Inf; checkpoint not written "
                     f"(the latest is still {self.state.manager.latest_checkpoint})")
            return
        try:
            self.state.save(epochs_done)
        except (OSError, tf.errors.OpError) as e:  # disk full, permissions, a lost mount: stop, keep the last one
            reason = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
            self.error = (f"{when}: could not write a checkpoint to {self.state.manager.directory} ({reason}); the "
                          f"latest complete one is still {self.state.manager.latest_checkpoint}. Free space (or fix "
                          "the folder) and rerun the same command to resume from it.")
            self.log(self.error)
            self.model.stop_training = True


def weights_finite(model) -> bool:
    """True when every variable of the model (networks, physics) is finite."""
    return all(bool(np.all(np.isfinite(np.asarray(v)))) for v in model.weights if "float" in str(v.dtype))


class NonFiniteGuard(keras.callbacks.Callback):
    """Stop (or roll back) as soon as a training loss is NaN or Inf.

    After each step the step's logs (generator and critic losses, gradient penalty, ...)
    are checked. ``on_nan="stop"``: training stops, ``message`` names the step and the
    losses, and no checkpoint of the bad weights is written (see :class:`CheckpointCallback`).
    ``on_nan="rollback"``: the last checkpoint is restored, every learning rate is halved
    and training goes on; after ``max_rollbacks`` rollbacks it stops as above.
    """

    def __init__(self, state: TrainState, on_nan: str = "stop", max_rollbacks: int = 3,
                 log: Callable[[str], None] = logging.warning):
        super().__init__()
        if on_nan not in ("stop", "rollback"):
            raise ValueError(f"on_nan: expected 'stop' or 'rollback', got {on_nan!r}")
        self.state, self.on_nan, self.max_rollbacks, self.log = state, on_nan, max_rollbacks, log
        self.rollbacks, self.message = 0, None

    def on_train_batch_end(self, batch, logs=None):
        bad = sorted(k for k, v in (logs or {}).items() if not np.all(np.isfinite(np.asarray(v, np.float64))))
        if not bad:
            return
        step = _generator_step(self.model)
        latest = self.state.manager.latest_checkpoint
        if self.on_nan == "rollback" and self.rollbacks < self.max_rollbacks and latest is not None:
            self.rollbacks += 1
            self.state.checkpoint.restore(latest)
            for name in ("g_optimizer", "d_optimizer", "h_optimizer"):
                optimizer = getattr(self.model, name, None)
                if optimizer is not None:
                    scale_learning_rate(optimizer, 0.5)
            for metric in self.model.metrics:  # the running means hold the NaN
                metric.reset_state()
            self.log(f"step {step}: non-finite {', '.join(bad)}; rolled back to {latest} and halved the learning "
                     f"rates (rollback {self.rollbacks} of {self.max_rollbacks})")
            return
        exhausted = " (rollbacks exhausted)" if self.rollbacks else ""
        self.message = (f"step {step}: non-finite {', '.join(bad)}; training stopped, the last good checkpoint is "
                        f"{latest or 'none (no checkpoint yet)'}{exhausted}")
        self.log(self.message)
        self.model.stop_training = True


class ValidationCallback(keras.callbacks.Callback):
    """At each epoch end: validation metrics and image panels to TensorBoard.

    Args:
        evaluate: ``() -> (scalars: dict[str, float], images: dict[str, array (N, H, W, C)])``.
        log_dir: TensorBoard folder.
        every: epochs between evaluations.
    """

    def __init__(self, evaluate: Callable[[], tuple[dict, dict]], log_dir: str | os.PathLike, every: int = 1):
        super().__init__()
        self.evaluate, self.every = evaluate, max(1, every)
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "validation"))

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        scalars, images = self.evaluate()
        step = _generator_step(self.model)
        with self.writer.as_default(step=step):
            for name, value in scalars.items():
                tf.summary.scalar(name, value)
            for name, value in images.items():
                tf.summary.image(name, np.clip(value, 0, 1), max_outputs=4)
        self.writer.flush()
        if logs is not None:
            logs.update({k.replace("/", "_"): v for k, v in scalars.items()})


class TrainScalars(keras.callbacks.Callback):
    """The training logs (losses, cycle terms, critic gap, gradient penalty, ramps, gradient
    norms) to TensorBoard (``<log_dir>/train``) at each epoch end, against generator steps:
    the axis of :class:`ValidationCallback`'s scalars, so both plot on one axis."""

    def __init__(self, log_dir: str | os.PathLike):
        super().__init__()
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "train"))

    def on_epoch_end(self, epoch, logs=None):
        with self.writer.as_default(step=_generator_step(self.model)):
            for name, value in (logs or {}).items():
                if not name.startswith("val_"):  # the validation writer has those
                    tf.summary.scalar(name, float(np.mean(value)))
        self.writer.flush()


# What --select=best can keep an epoch by, in order of preference: a log key and how to say it.
CRITERIA = {
    "val_psnr": "validation PSNR {:.2f} dB",
    "val_psnr_affine": "validation PSNR after an affine intensity fit {:.2f} dB",
    "val_consistency": "measurement consistency {:.3f} (-|log chi^2| of the --val_files' residual under the noise "
                       "model, 0 at best; needs no targets)",
}


class BestCheckpoint(keras.callbacks.Callback):
    """Keep the networks of the epoch with the highest validation ``monitor`` in ``directory``
    (one checkpoint, replaced atomically when an epoch beats it), with that epoch and value; a
    resumed run compares against the recorded best.

    Args:
        networks: what to keep, e.g. ``{"generator": G, "forward_op": H}``.
        directory: the checkpoint folder (``<run_dir>/best``).
        monitor: the log key (written by :class:`ValidationCallback`, which must come first), or
            several in order of preference: each epoch uses the first one in the logs (the
            validation PSNR where the validation files have targets, else the measurement
            consistency).
    """

    def __init__(self, networks: dict, directory: str | os.PathLike,
                 monitor: str | tuple[str, ...] = ("val_psnr", "val_consistency")):
        super().__init__()
        self.monitors = (monitor,) if isinstance(monitor, str) else tuple(monitor)
        self.value = tf.Variable(-np.inf, dtype=tf.float64, trainable=False, name="best_value")
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")
        self.criterion = tf.Variable(0, dtype=tf.int64, trainable=False, name="criterion")
        self.networks = networks
        self.checkpoint = tf.train.Checkpoint(**networks, value=self.value, epoch=self.best_epoch,
                                              criterion=self.criterion)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(directory), max_to_keep=1)
        recorded = self.recorded()
        if recorded is not None:  # resume: the record to beat, not the weights
            self.best_epoch.assign(recorded[0])
            self.value.assign(recorded[1])

    @property
    def monitor(self) -> str:
        """The log key the kept epoch was (or will be) chosen by."""
        return self.monitors[min(int(self.criterion.numpy()), len(self.monitors) - 1)]

    def recorded(self) -> tuple[int, float] | None:
        """``(epoch, value)`` of the kept checkpoint, or None; sets :attr:`monitor` to its criterion."""
        latest = self.manager.latest_checkpoint
        if latest is None:
            return None
        reader = tf.train.load_checkpoint(latest)
        if reader.has_tensor("criterion/.ATTRIBUTES/VARIABLE_VALUE"):  # absent in runs kept by PSNR alone
            self.criterion.assign(int(reader.get_tensor("criterion/.ATTRIBUTES/VARIABLE_VALUE")))
        return (int(reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE")),
                float(reader.get_tensor("value/.ATTRIBUTES/VARIABLE_VALUE")))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        found = [i for i, m in enumerate(self.monitors) if logs.get(m) is not None]
        if not found:
            return
        value = logs[self.monitors[found[0]]]
        if self.best_epoch.numpy() > 0 and found[0] != int(self.criterion.numpy()):
            return  # the kept epoch was chosen by another criterion: values do not compare
        if not np.isfinite(value) or float(value) <= float(self.value.numpy()):
            return
        if not all(np.all(np.isfinite(v.numpy())) for n in self.networks.values() for v in n.variables):
            return
        self.value.assign(float(value))
        self.best_epoch.assign(epoch + 1)
        self.criterion.assign(found[0])
        self.manager.save()

    def describe(self, value: float) -> str:
        """``value`` of the kept epoch in words (its criterion's)."""
        return CRITERIA.get(self.monitor, self.monitor + " {:.4g}").format(value)

    def restore_best(self) -> tuple[int, float] | None:
        """Load the kept networks; return their ``(epoch, value)``, or None when none was kept."""
        recorded = self.recorded()
        if recorded is not None:
            self.checkpoint.restore(self.manager.latest_checkpoint).expect_partial()
        return recorded


def averaging_optimizer(optimizer) -> keras.optimizers.Optimizer | None:
    """``optimizer`` (or the one a ``LossScaleOptimizer`` wraps) when it keeps weight averages, else None."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return inner if getattr(inner, "use_ema", False) else None


def average_pairs(optimizer) -> list:
    """``(variable, moving average)`` of each variable an averaging optimizer updates (Keras'
    ``use_ema`` layout, as ``SwapEMAWeights`` reads it)."""
    return list(zip(optimizer._trainable_variables, optimizer._model_variables_moving_average))


class AveragedWeights(keras.callbacks.Callback):
    """Polyak averaging for what is validated, kept and exported, not for what is trained.

    At each epoch end the networks get the optimizer's moving averages of their weights (see
    :func:`adam`) and the averages' slots the raw weights (a swap, so nothing is copied twice);
    the next epoch swaps back before its first step. Place it *after* the checkpoint callback
    (a checkpoint holds the raw weights and their averages, so a resumed run continues exactly)
    and *before* validation and :class:`BestCheckpoint` (which then see the averages). After
    ``fit`` the networks hold the averages. Keras' own ``SwapEMAWeights`` reads
    ``model.optimizer`` (a GAN has several) and discards the raw weights at the last epoch,
    which a run resumed or continued in another ``fit`` call needs.

    Args:
        optimizer: the optimizer that keeps the averages (``use_ema=True``).
    """

    def __init__(self, optimizer):
        super().__init__()
        self.optimizer = averaging_optimizer(optimizer)
        if self.optimizer is None:
            raise ValueError("AveragedWeights: the optimizer keeps no weight averages (use_ema=False)")
        self.holds_average = False

    @classmethod
    def of(cls, optimizer) -> AveragedWeights | None:
        """The callback for ``optimizer``, or None when it keeps no averages (``--ema_momentum=0``)."""
        return cls(optimizer) if averaging_optimizer(optimizer) else None

    def _swap(self) -> None:  # callbacks run in cross-replica context
        for var, average in average_pairs(self.optimizer):
            raw = tf.identity(var)
            var.assign(average)
            average.assign(raw)
        self.holds_average = not self.holds_average

    def use_average(self) -> None:
        """Put the averages into the networks (for evaluation and export after training)."""
        if not self.holds_average:
            self._swap()

    def use_raw(self) -> None:
        """Put the raw weights back (before training on, or saving a checkpoint)."""
        if self.holds_average:
            self._swap()

    def on_epoch_begin(self, epoch, logs=None):
        self.use_raw()

    def on_epoch_end(self, epoch, logs=None):
        self.use_average()
        compiled_optimizer = averaging_optimizer(getattr(self.model, "optimizer", None))
        if epoch == self.params["epochs"] - 1 and compiled_optimizer is self.optimizer:
            # A compiled model's fit ends with finalize_variable_values (slots -> variables):
            # the slots must hold the averages then.
            for var, average in average_pairs(self.optimizer):
                average.assign(var)


def reset_average(optimizer, variable) -> None:
    """Set the moving average ``optimizer`` keeps of ``variable`` (``--ema_momentum``) to the
    variable's value, after an assignment from outside training (e.g. a refitted PSF), so the
    average does not blend the old value back in. Nothing when it keeps none of ``variable``."""
    inner = averaging_optimizer(optimizer)
    if inner is None:
        return
    for var, average in average_pairs(inner):
        if var.path == variable.path:
            average.assign(var)


class AtEpochEnd(keras.callbacks.Callback):
    """Run ``action(epoch)`` at the end of each of ``epochs`` (1-based), before the callbacks
    after it (place it before the checkpoint so the checkpoint holds its result). A run
    resumed after one of them does not run it again (its effect is in the checkpoint)."""

    def __init__(self, epochs: Sequence[int], action: Callable[[int], None]):
        super().__init__()
        self.epochs, self.action = sorted(int(e) for e in epochs), action

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.epochs:
            self.action(epoch + 1)


# What the progress line shows unless --verbose (every metric is in TensorBoard): under 160 characters.
PROGRESS_KEYS = ("loss", "cycle_x", "cycle_y", "wasserstein", "val_psnr", "val_psnr_input", "val_chi2")


class Progress(keras.callbacks.ProgbarLogger):
    """Keras' progress bar (a live bar on a terminal, one line per epoch in a log) numbered
    against the run's ``epochs`` (a resumed run's partial epoch is ``Epoch 2/20``, not
    ``Epoch 2/2``), showing only ``keys`` of the metrics (all of them when ``keys`` is None)."""

    def __init__(self, epochs: int, keys: tuple[str, ...] | None = PROGRESS_KEYS):
        super().__init__()
        self.total_epochs, self.keys = int(epochs), keys

    def set_params(self, params):
        super().set_params(params)
        self.epochs = self.total_epochs

    def _shown(self, logs):
        return logs if self.keys is None or not logs else {k: v for k, v in logs.items() if k in self.keys}

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, self._shown(logs))

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, self._shown(logs))


def select_networks(best: BestCheckpoint | None, mode: str, last: str, last_epoch: int | None = None) -> str:
    """Apply ``--select``: with ``mode`` ``"best"`` or ``"consistency"`` load the networks ``best``
    kept; say which are evaluated.

    ``last`` describes the networks in memory (e.g. ``"the last epoch (20, step 2000)"``); they
    stay when ``mode`` is ``"last"`` or no validation PSNR was recorded (``best`` None or empty).
    ``last_epoch``: that epoch's number, so that a best epoch that is the last one is said so.
    """
    recorded = best.restore_best() if best is not None and mode != "last" else None
    if recorded is None:
        why = ("--select=last" if mode == "last"
               else "no validation score was recorded (--select=best needs --val_files)")
        return f"Evaluating {last}: {why}."
    epoch, value = recorded
    if last_epoch is not None and epoch == last_epoch:
        return f"Evaluating the best validation epoch, {epoch}, the last one ({best.describe(value)})."
    return (f"Evaluating the best validation epoch, {epoch} ({best.describe(value)}, kept in "
            f"{best.manager.directory}), rather than {last} (--select=last keeps the last).")


def _generator_step(model) -> int:
    """Generator updates so far (a GAN's ``g_optimizer``, else the model's own optimizer)."""
    optimizer = model.g_optimizer if hasattr(model, "g_optimizer") else model.optimizer
    return int(optimizer.iterations.numpy())


def relative_change(output: np.ndarray, inputs: np.ndarray) -> float:
    """``mean|output - input| / mean|input|``: 0 when G is the identity."""
    return float(np.mean(np.abs(output - inputs)) / (np.mean(np.abs(inputs)) + 1e-12))


class TrainingDiagnostics(keras.callbacks.Callback):
    """Warn at each epoch end when the GAN objective is failing in a way a user can act on.

    * the critic is diverging: the gradient penalty stayed above ``gp_threshold`` at every
      step of the epoch (``gp = (||grad|| - 1)^2``; 1 means a gradient norm of about 2);
      otherwise, when only its epoch mean is above, the critic is drifting from its Lipschitz
      bound. Either way: lower the critics' learning rate or raise ``--gp_weight``;
    * G is stuck at the identity: validation output within ``identity_threshold`` of its
      input (``val_change``, see :func:`relative_change`) once the warm-ups are over.

    Args:
        warn: called with the message (default ``absl.logging.warning``).
        after_step: generator step from which the identity check applies.
    """

    def __init__(self, gp_threshold: float = 1.0, identity_threshold: float = 1e-3, after_step: int = 0,
                 warn: Callable[[str], None] | None = None):
        super().__init__()
        self.gp_threshold, self.identity_threshold, self.after_step = gp_threshold, identity_threshold, after_step
        self.warn = warn or logging.warning

    def on_epoch_begin(self, epoch, logs=None):
        self._gp_mean, self._gp_steps, self._gp_min = 0.0, 0, float("inf")

    def on_train_batch_end(self, batch, logs=None):
        gp = (logs or {}).get("gp")
        if gp is None:
            return
        # Keras logs the running mean over the epoch: the step's own value is k m_k - (k-1) m_{k-1}.
        k = self._gp_steps + 1
        value = k * float(np.mean(gp)) - (k - 1) * self._gp_mean
        self._gp_mean, self._gp_steps, self._gp_min = float(np.mean(gp)), k, min(self._gp_min, value)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        gp = logs.get("gp")
        advice = "lower --critic_learning_rate or raise --gp_weight"
        if getattr(self, "_gp_steps", 0) and self._gp_min > self.gp_threshold:
            self.warn(f"epoch {epoch + 1}: the critic is diverging: its gradient penalty stayed above "
                      f"{self.gp_threshold:g} at every one of {self._gp_steps} steps (lowest {self._gp_min:.3g}); "
                      f"{advice}")
        elif gp is not None and float(np.mean(gp)) > self.gp_threshold:
            self.warn(f"epoch {epoch + 1}: the critic is far from 1-Lipschitz (mean gradient penalty "
                      f"{float(np.mean(gp)):.3g} > {self.gp_threshold:g}); {advice}")
        change = logs.get("val_change")
        step = _generator_step(self.model)
        if change is not None and float(change) < self.identity_threshold and step >= self.after_step:
            self.warn(f"epoch {epoch + 1}: G is at the identity (validation output differs from its input by "
                       f"{float(change):.2e} relative); the cycle terms hold it there: see --cycle_warmup_steps")


def save_flags(run_dir: str | os.PathLike, flags_text: str, config: dict) -> None:
    """Write ``flags.txt`` (a flagfile that reproduces the run) and ``config.json`` (the
    flags, plus the package versions and git commit under ``"environment"``)."""
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / "flags.txt", flags_text)
    record = {**config, "environment": environment()}
    atomic_write_text(run_dir / "config.json", json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def recorded_differences(run_dir: str | os.PathLike, config: dict, specs: Iterable) -> list[str]:
    """``--flag: recorded -> now`` for each model-defining flag (and the task) that differs from
    the run recorded in ``run_dir/config.json``; empty when there is no trained run there.

    ``specs``: the flags' declarations (:class:`tf_otcycle.tasks.base.FlagSpec`), whose
    ``may_change`` flags may differ and whose ``before`` stands in for a flag the run was
    recorded without. Keys of ``config`` no spec declares must match."""
    run_dir = Path(run_dir)
    record_path = run_dir / "config.json"
    if not record_path.exists() or not any((run_dir / "checkpoints").glob("*.index")):
        return []
    try:
        recorded = json.loads(record_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return [f"{record_path}: unreadable record of the run ({e})"]
    specs = {spec.name: spec for spec in specs}
    out = []
    for key in sorted(set(config) | set(recorded)):
        spec = specs.get(key)
        if (spec is not None and spec.may_change) or key == "environment":
            continue
        before = spec.before if spec is not None else None
        old, new = recorded.get(key, before if key in config else None), config.get(key)
        if old != new and not (isinstance(old, list) and isinstance(new, tuple) and list(new) == old):
            name = "task" if key == "task" else f"--{key}"
            out.append(f"{name}: {old!r} in the run, {new!r} now")
    return out


def environment() -> dict:
    """Versions of Python and the main packages, and the package's git commit when it is a checkout."""
    import platform
    import subprocess

    import tf_otcycle

    versions = {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
                "numpy": np.__version__, "tf_otcycle": tf_otcycle.__version__}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(tf_otcycle.__file__).parent, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {**versions, "git_commit": commit}


def probe_writable(run_dir: str | os.PathLike) -> None:
    """Create ``run_dir`` and write a file in it; ``OSError`` naming the folder when it cannot
    (read-only, no permission, full disk), before any training."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run_dir / ".write_probe", b"\0" * 65536)
        (run_dir / ".write_probe").unlink()
    except OSError as e:
        raise OSError(f"{run_dir}: the run directory is not writable ({e.strerror or e})") from None


def adam(learning_rate, beta_1: float = 0.5, beta_2: float = 0.9, ema_momentum: float = 0.0) -> keras.optimizers.Adam:
    """The paper's optimiser: Adam(lr, beta_1=0.5, beta_2=0.9).

    With ``ema_momentum`` > 0 it also keeps an exponential moving average of the variables it
    updates, ``average = m * average + (1 - m) * variable`` after every update (Keras'
    ``use_ema``; the averages are optimizer variables, so checkpoints hold them), which
    :class:`AveragedWeights` puts into the networks for validation, selection and export.
    """
    if not 0.0 <= ema_momentum < 1.0:
        raise ValueError(f"ema_momentum: expected in [0, 1), got {ema_momentum}")
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, use_ema=ema_momentum > 0,
                                 ema_momentum=ema_momentum)
