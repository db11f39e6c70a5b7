"""Training infrastructure shared by the entry points: strategies, whole-state checkpoints
with automatic resume, TensorBoard image summaries, effective-flag files.

Nothing here reads flags; ``train/*.py`` pass plain values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tf_otcycle.io_utils import atomic_write_text


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


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes outputs (always, except non-chief multi-workers)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
        return True
    return resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0)


class TrainState:
    """Whole training state in one ``tf.train.Checkpoint``: networks, forward operator,
    both optimizers (their iteration counters are the step counts) and the epoch.

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
        if getattr(model, "h_optimizer", None) is not None:
            parts["h_optimizer"] = model.h_optimizer
        self.checkpoint = tf.train.Checkpoint(**parts)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(directory), max_to_keep=max_to_keep)

    @property
    def step(self) -> int:
        return int(self.model.g_optimizer.iterations.numpy())

    def restore(self, log: Callable[[str], None] = print) -> int:
        """Restore the latest checkpoint if any; return the epoch to start from."""
        latest = self.manager.latest_checkpoint
        if latest is None:
            return 0
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        log(f"Resumed from step {self.step} (epoch {int(self.epoch.numpy())}, {latest})")
        return int(self.epoch.numpy())

    def save(self, epoch: int) -> str:
        self.epoch.assign(epoch)
        return self.manager.save(checkpoint_number=self.step)


class CheckpointCallback(keras.callbacks.Callback):
    """Save the whole :class:`TrainState` at the end of every ``every`` epochs and at the end."""

    def __init__(self, state: TrainState, every: int = 1, write: bool = True):
        super().__init__()
        self.state, self.every, self.write = state, max(1, every), write

    def on_epoch_end(self, epoch, logs=None):
        last = bool(self.params) and epoch + 1 == self.params.get("epochs")
        if self.write and ((epoch + 1) % self.every == 0 or last):
            self.state.save(epoch + 1)


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


def _generator_step(model) -> int:
    """Generator updates so far (a GAN's ``g_optimizer``, else the model's own optimizer)."""
    optimizer = model.g_optimizer if hasattr(model, "g_optimizer") else model.optimizer
    return int(optimizer.iterations.numpy())


def relative_change(output: np.ndarray, inputs: np.ndarray) -> float:
    """``mean|output - input| / mean|input|``: 0 when G is the identity."""
    return float(np.mean(np.abs(output - inputs)) / (np.mean(np.abs(inputs)) + 1e-12))


class TrainingDiagnostics(keras.callbacks.Callback):
    """Warn at each epoch end when the GAN objective is failing in a way a user can act on.

    * the critic has lost its Lipschitz bound: mean gradient penalty above ``gp_threshold``
      (``gp = (||grad|| - 1)^2``; 1 means a gradient norm of about 2): lower the critics'
      learning rate or raise ``--gp_weight``;
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

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        gp = logs.get("gp")
        if gp is not None and float(gp) > self.gp_threshold:
            self.warn(f"epoch {epoch + 1}: the critic is far from 1-Lipschitz (mean gradient penalty {float(gp):.3g} > "
                       f"{self.gp_threshold:g}); lower --critic_learning_rate or raise --gp_weight")
        change = logs.get("val_change")
        step = _generator_step(self.model)
        if change is not None and float(change) < self.identity_threshold and step >= self.after_step:
            self.warn(f"epoch {epoch + 1}: G is at the identity (validation output differs from its input by "
                       f"{float(change):.2e} relative); the cycle terms hold it there: see --cycle_warmup_steps")


def save_flags(run_dir: str | os.PathLike, flags_text: str, config: dict) -> None:
    """Write ``flags.txt`` (a flagfile that reproduces the run) and ``config.json``."""
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / "flags.txt", flags_text)
    atomic_write_text(run_dir / "config.json", json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")


def adam(learning_rate, beta_1: float = 0.5, beta_2: float = 0.9) -> keras.optimizers.Adam:
    """The paper's optimiser: Adam(lr, beta_1=0.5, beta_2=0.9)."""
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2)
