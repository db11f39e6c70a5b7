"""The paper's comparisons as a library: every method trained with one budget, scored on one split.

:func:`compare` trains each learned method of ``config.methods`` (``--epochs`` x
``--steps_per_epoch`` generator steps, the task's optimizers and schedule, the epoch kept by
``--select``), runs every method on the test files and writes the tables, panels and each
learned model under ``<run_dir>/<method>/generator.keras`` (its training seconds beside it,
``training.json``); ``--eval_only`` rebuilds the tables, training times included, from those
models. Nothing here depends on the task. ``train/compare.py`` is its
command line.

Methods: ``input``, ``supervised`` (the same generator on matched pairs), ``cyclegan``
(conventional, two deep generators), the self-supervised methods of
:mod:`tf_otcycle.self_supervised` (``mc``, ``ei``, ``ssdu``), ``classical`` (the task's
solvers, their settings chosen on the validation files), ``ot_cyclegan`` and the trivial
references ``zeros`` / ``mean`` where the task offers them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import time
from pathlib import Path

import keras
from absl import app

from tf_otcycle import baselines, tasks
from tf_otcycle.data import tiff
from tf_otcycle.evaluation import evaluate, write_report
from tf_otcycle.export import export_keras
from tf_otcycle.io_utils import atomic_write_text
from tf_otcycle.run import flags_text, select_monitor
from tf_otcycle.self_supervised import METHODS as SELF_SUPERVISED
from tf_otcycle.tasks.base import ema_momentum_error, gan_kwargs, set_precision, with_loss_scaling
from tf_otcycle.tasks.config import CommonConfig, Config, enum, flag_specs, real, strings
from tf_otcycle.training import (
    PROGRESS_KEYS,
    AveragedWeights,
    BestCheckpoint,
    Progress,
    TrainScalars,
    ValidationCallback,
    save_flags,
    select_networks,
    settled_epoch,
)

__all__ = ["COMPARISON_FLAGS", "KNOWN", "LEARNED", "ComparisonConfig", "ComparisonFields", "build", "build_model",
           "check_flags", "compare", "comparison_config", "config_class", "load", "method_config", "methods_for",
           "recorded_seconds", "train"]

LEARNED = ("supervised", "cyclegan", *SELF_SUPERVISED, "ot_cyclegan")
KNOWN = {"input", "classical", "zeros", "mean", *LEARNED}
TRAINING_RECORD = "training.json"  # beside each learned method's generator.keras: its training seconds


@dataclasses.dataclass(frozen=True)
class ComparisonFields(Config):
    """The flags ``train/compare.py`` adds to the chosen task's."""

    application: str = enum("mri", tasks.NAMES, "Which inverse problem (the task).")
    methods: list[str] = strings(["input", "supervised", "cyclegan", "classical", "ot_cyclegan"],
                                 "Methods to compare; 'classical' is the task's classical solver.")
    supervised_loss: str = enum("l1", ("l1", "l2"), "Loss of the supervised baseline.")
    supervised_ema_momentum: float | None = real(
        None, "Weight average of the supervised baseline (as --ema_momentum); default --ema_momentum. A longer "
        "average stops a GAN's validation falls but costs supervised learning accuracy, so each can have its own.")


COMPARISON_FLAGS = flag_specs(ComparisonFields)


@dataclasses.dataclass(frozen=True)
class ComparisonConfig(ComparisonFields, CommonConfig):
    """What a comparison reads: a task's configuration with :class:`ComparisonFields`
    (the type of :func:`config_class`'s classes)."""


@functools.cache
def config_class(task: tasks.Task) -> type[ComparisonConfig]:
    """``task``'s configuration class with the comparison's flags."""
    name = task.config_class.__name__.removesuffix("Config") + "ComparisonConfig"
    return dataclasses.make_dataclass(name, [], bases=(task.config_class, ComparisonConfig), frozen=True)


def comparison_config(task: tasks.Task, **values) -> ComparisonConfig:
    """A comparison's configuration of ``task``: every flag at its default but ``values``."""
    return config_class(task).from_values(values)


def build_model(task: tasks.Task, name: str, config: ComparisonConfig, data: dict | None) -> keras.Model:
    """The compiled model of a learned method, built from the task's parts."""
    steps = config.steps_per_epoch
    if name == "ot_cyclegan":
        return task.build_model(config, data, steps)
    if name in SELF_SUPERVISED:
        try:
            return task.build_self_supervised(config, data, name, steps)
        except ValueError as e:  # e.g. ssdu on a task without k-space columns
            raise app.UsageError(f"--methods={name}: {e}") from None
    g_optimizer, d_optimizer, _ = with_loss_scaling(task.optimizers(method_config(name, config), steps), config)
    if name == "cyclegan":
        model = baselines.conventional_cyclegan(
            task.generator(config, data, "generator", "x"), task.generator(config, data, "inverse_generator", "y"),
            task.critic(config, "x"), task.critic(config, "y"), **{**gan_kwargs(config), "cycle_gradients": "joint"},
            # conventional: both generators learn from both cycles, whatever --cycle_gradients
            **task.fake_pools(config, True))
        model.compile(g_optimizer, d_optimizer)
        return model
    return baselines.supervised(task.generator(config, data), config.supervised_loss, g_optimizer)


def method_config(name: str, config: ComparisonConfig) -> ComparisonConfig:
    """``config`` as method ``name`` trains with it: the supervised baseline's own
    ``--supervised_ema_momentum`` where given; every other method's as given."""
    if name == "supervised" and config.supervised_ema_momentum is not None:
        return config.replace(ema_momentum=config.supervised_ema_momentum)
    return config


def build(task: tasks.Task, name: str, config: ComparisonConfig, data: dict):
    """``(model, dataset)`` of a learned method: unpaired batches, or pairs for supervised."""
    model = build_model(task, name, config, data)  # first: the seeded weights do not depend on the pipeline
    return model, task.paired_dataset(config, data) if name == "supervised" else task.unpaired_dataset(config, data)


def train(task: tasks.Task, name: str, config: ComparisonConfig, data: dict, run_dir: Path
          ) -> tuple[keras.Model, float]:
    """Fit a learned method with the shared budget, save it; return it and the seconds taken."""
    keras.utils.set_random_seed(config.seed)
    model, dataset = build(task, name, config, data)
    print(f"\n=== {name}: {config.epochs} epochs x {config.steps_per_epoch} steps", flush=True)
    callbacks = [*task.callbacks(config, data, model, run_dir / name),  # e.g. --psf_fit_epochs, before the average
                 TrainScalars(run_dir / name / "logs")]  # on the generator-step axis of the validation scalars
    averaged = AveragedWeights.of(getattr(model, "g_optimizer", None) or model.optimizer)
    if averaged:  # --ema_momentum: validation, --select and the export see the average
        callbacks.append(averaged)
    validation = task.validation(config, data, model)
    best = None
    if validation is not None and getattr(model, "ends_in_data_consistency", False):
        print(f"{name}: validation and --select score G followed by data consistency ({name}+dc)", flush=True)
    if validation is not None:  # val_psnr in the epoch lines, and the best epoch kept
        callbacks.append(ValidationCallback(validation, run_dir / name / "logs"))
        if config.select != "last":
            shutil.rmtree(run_dir / name / "best", ignore_errors=True)  # a new training: no record to beat
            callbacks.append(best := BestCheckpoint(kept_networks(model), run_dir / name / "best",
                                                    select_monitor(config, task),
                                                    settled_epoch(model, config.steps_per_epoch, config.epochs)))
    start = time.perf_counter()
    callbacks.append(Progress(config.epochs, None if config.verbose else PROGRESS_KEYS))  # last: sees val_*
    model.fit(dataset, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch, callbacks=callbacks,
              verbose=2, shuffle=False)
    seconds = time.perf_counter() - start
    last = f"the last epoch ({config.epochs})"
    print(f"{name}: {select_networks(best, config.select, last, config.epochs)}", flush=True)
    generator = model.generator if hasattr(model, "generator") else model
    export_keras(generator, run_dir / name / "generator.keras")
    if name == "ot_cyclegan" and hasattr(model.forward_op, "psf"):
        tiff.write_stack(run_dir / name / "learned_psf.tif", model.forward_op.psf)
    atomic_write_text(run_dir / name / TRAINING_RECORD, json.dumps({"train_seconds": seconds}) + "\n")
    return model, seconds


def recorded_seconds(run_dir: Path, name: str) -> float | None:
    """The training seconds ``train`` recorded beside method ``name``'s saved generator (for
    ``--eval_only``'s tables), or None for a run saved without the record."""
    path = run_dir / name / TRAINING_RECORD
    if not path.exists():
        return None
    try:
        return float(json.loads(path.read_text())["train_seconds"])
    except (ValueError, KeyError, TypeError) as e:
        raise app.UsageError(f"--eval_only: {path} is not a training record ({e})") from None


def kept_networks(model: keras.Model) -> dict:
    """What ``--select=best`` keeps of a learned method: its generator (and an OT model's H)."""
    if not hasattr(model, "generator"):
        return {"generator": model}
    return {"generator": model.generator, "forward_op": model.forward_op}


class _Restored:
    """What ``--eval_only`` needs of a trained OT model: its generator and learned PSF."""

    def __init__(self, generator, psf_path: Path):
        self.generator = generator
        if psf_path.exists():
            self.forward_op = type("LearnedPSF", (), {"psf": tiff.read_stack(psf_path)})()


def load(run_dir: Path, name: str):
    """A learned method trained earlier (``--eval_only``): its generator (and an OT model's PSF)."""
    path = run_dir / name / "generator.keras"
    if not path.exists():
        raise app.UsageError(f"--eval_only: {path} missing; train {name} first")
    generator = keras.saving.load_model(path, safe_mode=True)
    return _Restored(generator, run_dir / name / "learned_psf.tif") if name == "ot_cyclegan" else generator


def methods_for(task: tasks.Task, config: ComparisonConfig, data: dict, models: dict) -> dict:
    """Every requested method as ``inputs -> output``, in the order of ``--methods``."""
    methods = {}
    for name in config.methods:
        if name == "input":
            methods["input"] = task.input_method(config)
        elif name in ("zeros", "mean"):
            found = task.reference_methods(config, data, [name])
            if not found:
                raise app.UsageError(f"--methods: {name!r} is not offered by the {task.name} task")
            methods.update(found)
        elif name == "classical":  # every classical solver, its settings chosen on the validation files
            for row in task.classical_rows():
                try:
                    methods[row], chosen = task.tuned_classical(config, data, models.get("ot_cyclegan"), row)
                except ValueError as e:
                    raise app.UsageError(str(e)) from None
                print(f"classical {chosen}", flush=True)
        else:
            model = models[name]
            generator = model.generator if hasattr(model, "generator") else model
            methods[name] = task.generator_method(config, generator)
            methods.update(task.variants(name, methods[name]))
    return methods


def check_flags(task: tasks.Task, config: ComparisonConfig) -> None:
    """``app.UsageError`` for a method that is unknown or that ``task`` cannot train, or no
    ``--test_files`` (every method is scored on them)."""
    methods = config.methods
    unknown = set(methods) - KNOWN
    if unknown:
        raise app.UsageError(f"bad flags:\n  --methods: unknown {sorted(unknown)}; choose from {sorted(KNOWN)}")
    if "ssdu" in methods and not task.splittable:
        raise app.UsageError(f"bad flags:\n  --methods=ssdu splits k-space columns under per-sample masks (MRI); "
                             f"the {task.name} task's measurements have none")
    if not config.test_files:
        raise app.UsageError("bad flags:\n  --test_files is required (every method is scored on them)")
    if config.supervised_ema_momentum is not None and (
            error := ema_momentum_error("supervised_ema_momentum", config.supervised_ema_momentum)):
        raise app.UsageError(f"bad flags:\n  {error}")


def compare(task: tasks.Task, config: ComparisonConfig, data: dict) -> str:
    """Train (or with ``--eval_only`` load) every learned method, score every method on the
    test files, write ``<run_dir>/eval``; returns the table."""
    run_dir = Path(config.run_dir)
    keras.utils.set_random_seed(config.seed)
    set_precision(config, task.step_work(config))
    if config.steps_per_epoch is None and not config.eval_only:
        config = config.replace(steps_per_epoch=task.steps_per_epoch(config, data))
    if not config.eval_only:  # the training run's flags.txt stays the record of training
        save_flags(run_dir, flags_text(config), config.to_dict())

    learned = [m for m in LEARNED if m in config.methods]
    if "supervised" in learned and not config.eval_only and (problems := task.paired_problems(data)):
        raise app.UsageError("--methods=supervised: " + "; ".join(problems))
    models, train_seconds = {}, {}
    for name in learned:
        if config.eval_only:
            models[name], train_seconds[name] = load(run_dir, name), recorded_seconds(run_dir, name)
        else:
            models[name], train_seconds[name] = train(task, name, config, data, run_dir)

    methods = methods_for(task, config, data, models)
    report = evaluate(methods, lambda: task.samples(config, data), run_dir / "eval", config.num_panels)
    extra = {}
    for name in methods:
        generator = models.get(name)
        generator = getattr(generator, "generator", generator)
        extra[name] = {"params": int(generator.count_params()) if generator is not None else 0,
                       "train_seconds": train_seconds.get(name)}
    return write_report(report, run_dir / "eval", extra, unit=task.unit)
