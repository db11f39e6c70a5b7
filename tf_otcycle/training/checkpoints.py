"""Whole-state checkpoints with automatic resume, the guard against non-finite steps, and the
best validation epoch's networks (``--select``)."""

from __future__ import annotations

import os
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tf_otcycle.schedules import scale_learning_rate
from tf_otcycle.training.optimizers import generator_step


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
        step = generator_step(self.model)
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
            several in order of preference: each epoch uses the first one in the logs. The
            entry points pass one (:func:`tf_otcycle.run.select_monitor`).
        settled_epoch: the first epoch (1-based) whose measurement consistency may be kept;
            earlier ones end inside the objective's warm-ups, where G is trained on another
            objective (:func:`settled_epoch`, at most the run's last epoch). The validation
            PSNR, which measures the truth, may keep any epoch.
    """

    def __init__(self, networks: dict, directory: str | os.PathLike,
                 monitor: str | tuple[str, ...] = ("val_psnr", "val_consistency"), settled_epoch: int = 1):
        super().__init__()
        self.monitors = (monitor,) if isinstance(monitor, str) else tuple(monitor)
        self.settled_epoch = int(settled_epoch)
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
        if self.monitors[found[0]] == "val_consistency" and epoch + 1 < self.settled_epoch:
            return  # a warm-up epoch: its G is not the one the full objective trains
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


def settled_epoch(model: keras.Model, steps_per_epoch: int, epochs: int) -> int:
    """The first epoch (1-based) trained wholly at the full objective: the first after the
    GAN's warm-ups (``gan_warmup_steps``, ``cycle_warmup_steps``); 1 for a model without; at
    most ``epochs``, the run's last (a run shorter than its warm-ups keeps its last epoch)."""
    warmup = max(int(getattr(model, "gan_warmup_steps", 0)), int(getattr(model, "cycle_warmup_steps", 0)))
    first = -(-warmup // max(int(steps_per_epoch), 1)) + 1 if warmup > 0 else 1
    return max(1, min(first, int(epochs)))


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
               else "no validation score was recorded (--select=best needs --val_files with targets; "
                    "--select=consistency picks by measurement consistency without them)")
        return f"Evaluating {last}: {why}."
    epoch, value = recorded
    if last_epoch is not None and epoch == last_epoch:
        return f"Evaluating the best validation epoch, {epoch}, the last one ({best.describe(value)})."
    return (f"Evaluating the best validation epoch, {epoch} ({best.describe(value)}, kept in "
            f"{best.manager.directory}), rather than {last} (--select=last keeps the last).")
