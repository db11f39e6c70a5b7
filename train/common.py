"""Flags and the run flow shared by ``train/mri.py`` and ``train/microscopy.py``.

Each entry point defines its own data and network flags, then calls
:func:`define_common_flags` for the training ones (with its own defaults) and
:func:`run` with functions that build its model, dataset and evaluation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from tf_otcycle.training import (  # noqa: E402
    CheckpointCallback,
    TrainingDiagnostics,
    TrainState,
    adam,
    is_chief,
    make_strategy,
    save_flags,
)

COMMON_KEYS = [
    "run_dir", "epochs", "steps_per_epoch", "batch_size", "base_filters", "depth", "critic_filters",
    "critic_layers", "critic_norm", "n_critic", "rho", "sigma", "gp_weight", "gan_weight", "gan_warmup_steps",
    "cycle_warmup_steps", "learning_rate", "critic_learning_rate", "beta_1", "beta_2",
    "seed", "strategy", "eval_only", "num_panels", "checkpoint_every", "export",
]


def define(definer, name: str, *args, **kwargs) -> None:
    """Define a flag unless another entry point module already did (``train/compare.py``
    imports both entry points; the first definition wins, flagfiles set the values)."""
    if name not in flags.FLAGS:
        definer(name, *args, **kwargs)


def define_common_flags(
    epochs: int, base_filters: int, depth: int, critic_filters: int, critic_layers: int,
    gan_weight: float = 1.0, gan_warmup_steps: int = 500, cycle_warmup_steps: int = 500,
) -> None:
    """The training flags both entry points share (paper defaults where the paper gives one)."""
    define(flags.DEFINE_string, "run_dir", None, "Run directory: flags, TensorBoard logs, checkpoints, eval, export.")
    define(flags.DEFINE_integer, "epochs", epochs, "Training epochs.")
    define(flags.DEFINE_integer, "steps_per_epoch", None, "Generator steps per epoch; default: one pass over the measurement domain.")
    define(flags.DEFINE_integer, "batch_size", 1, "Global batch size (split over replicas); paper: 1.")
    define(flags.DEFINE_integer, "base_filters", base_filters, "Filters of the first U-Net level.")
    define(flags.DEFINE_integer, "depth", depth, "U-Net poolings; input sizes must be divisible by 2**depth.")
    define(flags.DEFINE_integer, "critic_filters", critic_filters, "Filters of the first PatchGAN conv.")
    define(flags.DEFINE_integer, "critic_layers", critic_layers, "Stride-2 conv layers of each PatchGAN.")
    define(flags.DEFINE_integer, "n_critic", 5, "Critic updates per generator update.")
    define(flags.DEFINE_float, "rho", 0.5, "Weight of the image cycle |x - G(Hx)|_1 (eq. 21).")
    define(flags.DEFINE_float, "sigma", 0.5, "Weight of the measurement cycle |y - H G(y)|_1 (eq. 21).")
    define(flags.DEFINE_float, "gp_weight", 10.0, "Gradient penalty weight.")
    define(flags.DEFINE_enum, "critic_norm", "none", ["none", "layer", "instance"],
           "Normalisation inside the critics (WGAN-GP: none or layer; the authors' code: instance).")
    define(flags.DEFINE_float, "gan_weight", gan_weight,
           "Weight of the adversarial term, potentials in per-element (RMS) units (see OTCycleGAN).")
    define(flags.DEFINE_integer, "gan_warmup_steps", gan_warmup_steps,
           "Generator steps over which the adversarial weight ramps linearly from 0 to --gan_weight.")
    define(flags.DEFINE_integer, "cycle_warmup_steps", cycle_warmup_steps,
           "Generator steps over which sigma (the measurement cycle) ramps linearly from 0 to --sigma.")
    define(flags.DEFINE_float, "learning_rate", 1e-4, "Adam learning rate of the generator (and of H when learned).")
    define(flags.DEFINE_float, "critic_learning_rate", None, "Adam learning rate of the critics; default --learning_rate.")
    define(flags.DEFINE_float, "beta_1", 0.5, "Adam beta_1.")
    define(flags.DEFINE_float, "beta_2", 0.9, "Adam beta_2.")
    define(flags.DEFINE_integer, "seed", 0, "Global seed (weights, data order, random masks/patches).")
    define(flags.DEFINE_enum, "strategy", "auto", ["auto", "default", "mirrored", "multi_worker", "one_device"], "tf.distribute strategy.")
    define(flags.DEFINE_boolean, "eval_only", False, "Skip training: restore the latest checkpoint, evaluate and export.")
    define(flags.DEFINE_integer, "num_panels", 2, "Test files that get a PNG panel.")
    define(flags.DEFINE_integer, "checkpoint_every", 1, "Epochs between checkpoints (the last epoch is always saved).")
    define(flags.DEFINE_boolean, "export", True, "Export the generator (.keras and a new SavedModel version) after evaluation.")


def apply_defaults(defaults: dict) -> None:
    """Set the shared flags the command line and flagfiles did not give to ``defaults``.

    ``train/compare.py`` imports both entry points, so the shared flags carry the defaults of
    whichever defined them first; it calls this with the chosen application's defaults.
    """
    for name, value in defaults.items():
        if not flags.FLAGS[name].present:
            flags.FLAGS[name].value = value


def validate_common(config: dict) -> list[str]:
    errors = []
    if not config["run_dir"]:
        errors.append("--run_dir is required")
    for name in ("rho", "sigma", "gp_weight", "gan_weight", "gan_warmup_steps", "cycle_warmup_steps"):
        if config[name] < 0:
            errors.append(f"--{name} must be >= 0, got {config[name]}")
    for name in ("epochs", "batch_size", "base_filters", "critic_filters", "critic_layers", "n_critic", "checkpoint_every"):
        if config[name] < 1:
            errors.append(f"--{name} must be >= 1, got {config[name]}")
    if config["depth"] < 0:
        errors.append(f"--depth must be >= 0, got {config['depth']}")
    if config["steps_per_epoch"] is not None and config["steps_per_epoch"] < 1:
        errors.append(f"--steps_per_epoch must be >= 1, got {config['steps_per_epoch']}")
    if not config["learning_rate"] > 0:
        errors.append(f"--learning_rate must be > 0, got {config['learning_rate']}")
    if config["critic_learning_rate"] is not None and not config["critic_learning_rate"] > 0:
        errors.append(f"--critic_learning_rate must be > 0, got {config['critic_learning_rate']}")
    return errors


def critic_learning_rate(config: dict) -> float:
    """``--critic_learning_rate``, defaulting to ``--learning_rate``."""
    return config["critic_learning_rate"] or config["learning_rate"]


def gan_optimizers(config: dict) -> tuple:
    """Constant-rate Adam for G (and H) and for the critics, from the flags."""
    return (adam(config["learning_rate"], config["beta_1"], config["beta_2"]),
            adam(critic_learning_rate(config), config["beta_1"], config["beta_2"]))


def gan_kwargs(config: dict) -> dict:
    """The :class:`OTCycleGAN` hyper-parameters from the flags."""
    return {k: config[k] for k in ("rho", "sigma", "n_critic", "gp_weight", "gan_weight", "gan_warmup_steps", "cycle_warmup_steps",
                          "seed")}


def flags_text(config: dict) -> str:
    """A flagfile that reproduces ``config`` (lists comma-joined, unset values left out)."""
    return "".join(f"--{k}={','.join(map(str, v)) if isinstance(v, list) else v}\n"
                   for k, v in config.items() if v is not None)


def read_config(keys: list[str]) -> dict:
    return {k: flags.FLAGS[k].value for k in keys}


def run(
    config: dict,
    build_model: Callable[[dict], keras.Model],
    make_dataset: Callable[[], tf.data.Dataset],
    steps_per_epoch: int,
    extra_callbacks: Callable[[keras.Model], list],
    evaluate_and_export: Callable[[keras.Model], str],
) -> None:
    """Strategy -> model (inside its scope) -> resume -> fit -> evaluate -> export."""
    keras.utils.set_random_seed(config["seed"])
    tf.config.optimizer.set_experimental_options({"remapping": False})  # avoids a noisy grappler error
    strategy = make_strategy(config["strategy"])
    chief = is_chief(strategy)
    run_dir = Path(config["run_dir"])
    with strategy.scope():
        model = build_model(config)
        state = TrainState(model, run_dir / "checkpoints")
    if chief and not config["eval_only"]:  # the training run's flags.txt stays the record of training
        save_flags(run_dir, flags_text(config), config)
    if config["eval_only"]:
        if state.manager.latest_checkpoint is None:
            raise app.UsageError(f"--eval_only: no checkpoint in {run_dir / 'checkpoints'}")
        state.restore()
    else:
        initial_epoch = state.restore(log=print if chief else logging.info)
        if initial_epoch >= config["epochs"]:
            print(f"Training already complete ({initial_epoch} epochs).")
        else:
            callbacks = [
                keras.callbacks.TensorBoard(str(run_dir / "logs"), update_freq="epoch", write_graph=False),
                CheckpointCallback(state, config["checkpoint_every"], write=chief),
                *extra_callbacks(model),  # validation adds val_* to the logs the diagnostics read
                TrainingDiagnostics(after_step=max(config["cycle_warmup_steps"], config["gan_warmup_steps"])),
            ]
            model.fit(make_dataset(), epochs=config["epochs"], steps_per_epoch=steps_per_epoch,
                      initial_epoch=initial_epoch, callbacks=callbacks, verbose=2)
    if chief:
        print(evaluate_and_export(model))
