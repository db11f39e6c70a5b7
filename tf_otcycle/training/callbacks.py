"""Keras callbacks of a training run: validation and TensorBoard scalars, the weight average
in use, epoch-end hooks, the progress line and the diagnostics of a run going wrong."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tf_otcycle.training.optimizers import average_pairs, averaging_optimizer, generator_step


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
        step = generator_step(self.model)
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
        with self.writer.as_default(step=generator_step(self.model)):
            for name, value in (logs or {}).items():
                if not name.startswith("val_"):  # the validation writer has those
                    tf.summary.scalar(name, float(np.mean(value)))
        self.writer.flush()


# What --select=best can keep an epoch by, in order of preference: a log key and how to say it.


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
        step = generator_step(self.model)
        if change is not None and float(change) < self.identity_threshold and step >= self.after_step:
            self.warn(f"epoch {epoch + 1}: G is at the identity (validation output differs from its input by "
                       f"{float(change):.2e} relative); the cycle terms hold it there: see --cycle_warmup_steps")
