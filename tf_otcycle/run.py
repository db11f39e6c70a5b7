"""The run flow every entry point shares, written once against :class:`tf_otcycle.tasks.base.Task`.

    python train/<task>.py --flagfile=train/configs/<task>.flags --run_dir=runs/<task>

An entry point picks its task, calls :func:`define_flags` and :func:`launch`. :func:`main`
reads and checks the flags, resolves the data (every file error names the file, before any
training), then :func:`run`: strategy -> model (inside its scope) -> resume -> fit ->
evaluate -> report -> export. This module sits above the tasks and below the entry points
in ``train/``; ``train/common.py`` re-exports it for entry points written before it moved.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import keras
import tensorflow as tf
from absl import app, flags, logging

from tf_otcycle.evaluation import evaluate, write_report
from tf_otcycle.tasks.base import (
    COMMON_KEYS,
    CommonConfig,
    FlagSpec,
    Task,
    flag_groups,
    required_flags,
    set_precision,
)
from tf_otcycle.training import (
    PROGRESS_KEYS,
    AveragedWeights,
    BestCheckpoint,
    CheckpointCallback,
    NonFiniteGuard,
    Progress,
    TrainingDiagnostics,
    TrainScalars,
    TrainState,
    ValidationCallback,
    is_chief,
    make_strategy,
    probe_writable,
    recorded_differences,
    save_flags,
    select_networks,
    set_threads,
    settled_epoch,
    weights_finite,
)

__all__ = ["COMMON_KEYS", "Terminated", "apply_defaults", "check", "configure_runtime", "define", "define_flags",
           "evaluate_model", "fit_plan", "flags_text", "help_text", "launch", "main", "prepare", "read_config", "run",
           "select_monitor", "stop_on_sigterm"]

_DEFINERS = {
    "string": flags.DEFINE_string, "integer": flags.DEFINE_integer, "float": flags.DEFINE_float,
    "boolean": flags.DEFINE_boolean, "list": flags.DEFINE_list,
}


def define(spec: FlagSpec) -> None:
    """Define the absl flag of ``spec`` unless already defined (``train/compare.py`` defines every task's)."""
    if spec.name in flags.FLAGS:
        return
    if spec.kind == "enum":
        flags.DEFINE_enum(spec.name, spec.default, list(spec.choices), spec.help)
    else:
        _DEFINERS[spec.kind](spec.name, spec.default, spec.help)


def define_flags(task: Task) -> None:
    """The shared training flags (with ``task``'s defaults) and the task's own flags."""
    for spec in task.all_flags:
        define(spec)


def apply_defaults(defaults: dict) -> None:
    """Set the shared flags the command line and flagfiles did not give to ``defaults``.

    ``train/compare.py`` defines the flags of every task, so the shared ones carry the
    defaults of whichever task defined them first; it calls this with the chosen task's.
    """
    for name, value in defaults.items():
        if not flags.FLAGS[name].present:
            flags.FLAGS[name].value = value


def read_config(keys: list[str]) -> dict:
    """The parsed values of the flags ``keys`` (flag name -> value)."""
    return {k: flags.FLAGS[k].value for k in keys}


def flags_text(config: Mapping) -> str:
    """A flagfile that reproduces ``config`` (lists comma-joined, unset values left out)."""
    return "".join(f"--{k}={','.join(map(str, v)) if isinstance(v, list) else v}\n"
                   for k, v in config.items() if v is not None)


def check(task: Task, config: CommonConfig) -> dict:
    """Validate the flags and resolve the data; ``app.UsageError`` listing every problem."""
    errors = task.validate(config)
    if errors:
        raise app.UsageError("bad flags:\n  " + "\n  ".join(errors))
    try:
        return task.resolve_data(config)
    except ValueError as e:  # format errors of every reader are ValueErrors naming the file
        raise app.UsageError(str(e)) from None


def prepare(task: Task, config: CommonConfig) -> tuple[CommonConfig, dict]:
    """:func:`check`, then the configuration completed from the data (:meth:`Task.settle`)."""
    data = check(task, config)
    return task.settle(config, data), data


def evaluate_model(task: Task, config: CommonConfig, data: dict, model, run_dir: Path) -> str:
    """Input, the OT-cycleGAN and its variants on the test files (tables, panels, report), the
    task's report of the model, the export."""
    table = None
    if data["files"]["test_files"]:
        ours = task.generator_method(config, model.generator)
        methods = {"input": task.input_method(config), "ot_cyclegan": ours, **task.variants("ot_cyclegan", ours)}
        report = evaluate(methods, lambda: task.samples(config, data), run_dir / "eval", config.num_panels)
        table = write_report(report, run_dir / "eval", unit=task.unit)
    lines = task.report_model(model, config, data, run_dir)
    if config.export:
        paths = task.export(model, config, run_dir / "export")
        unchanged = paths.pop("unchanged", False)
        lines.append(("Export unchanged (identical weights and settings): " if unchanged else "Exported ")
                     + ", ".join(str(p) for p in paths.values()))
    if table is None:
        lines.append("\nNo --test_files: nothing evaluated. Rerun the same command with --test_files and --eval_only "
                     "to score this run.")
    else:
        lines.append(f"\nTest metrics ({task.describe(config, data)}), {run_dir / 'eval' / 'metrics.csv'} "
                     f"(per_group.csv, per_file.csv beside it):\n{table}")
    return "\n".join(lines)


def progress(chief: bool) -> int:
    """Keras verbosity: a live progress bar on a terminal, one line per epoch in a log, none off the chief."""
    if not chief:
        return 0
    return 1 if sys.stdout.isatty() else 2


def training_data(task: Task, config: CommonConfig, data: dict, strategy: tf.distribute.Strategy, skip: int = 0):
    """The task's unpaired batches; over several replicas, one input pipeline per worker
    (``distribute_datasets_from_function``): its share of the files, its own random
    stream, the per-replica batch of the global ``--batch_size``. ``skip``: batches to
    replay first (each pipeline gives one batch per step), so that a resumed run sees what
    an uninterrupted one would (the pipeline's random streams are seeded and advance with it)."""
    if strategy.num_replicas_in_sync == 1:
        return task.unpaired_dataset(config, data).skip(skip)
    return strategy.distribute_datasets_from_function(lambda ctx: task.unpaired_dataset(config, data, ctx).skip(skip))


def fit_plan(step: int, initial_epoch: int, steps: int, epochs: int) -> list[tuple[int, int, int]]:
    """``(initial_epoch, epochs, steps_per_epoch)`` of each ``fit`` call that trains from
    ``step`` to ``epochs * steps``: a run saved in the middle of an epoch (``--checkpoint_steps``,
    Ctrl-C) first finishes that epoch's remaining steps, then runs whole epochs."""
    done = step - initial_epoch * steps
    if not 0 < done < steps or initial_epoch >= epochs:
        return [(initial_epoch, epochs, steps)] if initial_epoch < epochs else []
    plan = [(initial_epoch, initial_epoch + 1, steps - done)]
    return plan + ([(initial_epoch + 1, epochs, steps)] if initial_epoch + 1 < epochs else [])


def select_monitor(config: CommonConfig, task: Task) -> tuple[str, ...]:
    """The validation log key ``--select`` keeps an epoch by: the measurement consistency for
    ``--select=consistency``, else the task's quality (``Task.quality_key``), which only
    validation files with targets give (without them ``best`` keeps the last epoch: on the 15
    microscopy benchmark runs at the 32^3 PSF kernel the consistency's choice fell up to 3.0 dB
    below the oracle epoch, the last epoch at most 0.08 dB; QUALITY.md, Notes)."""
    return ("val_consistency",) if config.select == "consistency" else (task.quality_key,)


def select(config: CommonConfig, best: BestCheckpoint, state: TrainState) -> str:
    """Load the networks ``--select`` names (the best validation epoch, or the last); say which."""
    return select_networks(best, config.select, f"the last epoch ({state.current_epoch}, step {state.step})",
                           state.current_epoch)


def run(task: Task, config: CommonConfig, data: dict, strategy: tf.distribute.Strategy) -> None:
    """Model (inside the strategy's scope) -> resume -> fit -> evaluate -> export."""
    keras.utils.set_random_seed(config.seed)
    tf.config.optimizer.set_experimental_options({"remapping": False})  # avoids a noisy grappler error
    chief = is_chief(strategy)
    run_dir = Path(config.run_dir)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise app.UsageError(f"--batch_size {config.batch_size} (the global batch) must be divisible by the "
                             f"{replicas} replicas")
    if config.fake_pool and replicas > 1:
        raise app.UsageError("--fake_pool keeps one pool per model and needs one replica; this strategy has "
                             f"{replicas} (use --fake_pool=0 or --strategy=one_device)")
    steps = 1 if config.eval_only else task.steps_per_epoch(config, data)
    record = {"task": task.name, **config.to_dict()}
    differences = recorded_differences(run_dir, record, task.all_flags)
    if differences:  # before anything is written: the run folder keeps describing its model
        raise app.UsageError(f"{run_dir} holds a run trained with other settings; use another --run_dir, or the same "
                             "flags (epochs, evaluation and export flags may change):\n  " + "\n  ".join(differences))
    if chief:
        try:
            probe_writable(run_dir)  # an unwritable or full run directory is reported before training
        except OSError as e:
            raise app.UsageError(str(e)) from None
    set_precision(config, task.step_work(config))
    with strategy.scope():
        model = task.build_model(config, data, steps)
        state = TrainState(model, run_dir / "checkpoints")
    if chief and not config.eval_only:  # the training run's flags.txt stays the record of training
        save_flags(run_dir, flags_text(config), record)
    best = BestCheckpoint({"generator": model.generator, "forward_op": model.forward_op}, run_dir / "best",
                          select_monitor(config, task), settled_epoch(model, steps, config.epochs))
    # --ema_momentum: validation, --select and the export see the averaged weights
    averaged = AveragedWeights.of(model.g_optimizer)
    if config.eval_only:
        if state.manager.latest_checkpoint is None:
            raise app.UsageError(f"--eval_only: no checkpoint in {run_dir / 'checkpoints'}")
        state.restore()
    else:
        initial_epoch = state.restore(log=print if chief else logging.info)
        if initial_epoch >= config.epochs:
            print(f"Training already complete ({initial_epoch} epochs).")
        else:
            validation = task.validation(config, data, model) if chief else None
            guard = NonFiniteGuard(state, config.on_nan)
            callbacks = [
                guard,  # first: a NaN step stops (or rolls back) before anything else sees it
                *task.callbacks(config, data, model,
                                run_dir if chief else None),  # before the checkpoint holds their effect
                *([TrainScalars(run_dir / "logs")] if chief else []),  # only the chief writes logs, tables, exports
                checkpoints := CheckpointCallback(state, config.checkpoint_every, write=chief,
                                                  every_steps=config.checkpoint_steps),
                *([averaged] if averaged else []),  # after the checkpoint (raw weights), before validation
                # validation adds val_* to the logs the diagnostics and the best-epoch record read
                *([ValidationCallback(validation, run_dir / "logs"), best] if validation else []),
                TrainingDiagnostics(after_step=max(config.cycle_warmup_steps, config.gan_warmup_steps)),
                Progress(config.epochs, None if config.verbose else PROGRESS_KEYS),  # last: sees val_* too
            ]
            try:
                stop_on_sigterm()
                for start, end, steps_now in fit_plan(state.step, initial_epoch, steps, config.epochs):
                    skip = state.step if config.resume_replay else 0
                    if skip and chief:
                        print(f"Replaying the input pipeline to step {skip} (--resume_replay) ...", flush=True)
                    model.fit(training_data(task, config, data, strategy, skip), epochs=end, initial_epoch=start,
                              steps_per_epoch=steps_now, callbacks=callbacks, verbose=progress(chief), shuffle=False)
                    if model.stop_training:
                        break
            except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (Slurm, Kubernetes): keep what was trained
                if averaged:
                    averaged.use_raw()  # the checkpoint holds the raw weights and their averages
                if chief and weights_finite(model):
                    path = state.save(state.current_epoch)
                    what = "Terminated (SIGTERM)" if isinstance(stop, Terminated) else "Interrupted"
                    print(f"\n{what}: saved step {state.step} to {path}; rerun the same command to resume.",
                          flush=True)
                raise SystemExit(143 if isinstance(stop, Terminated) else 130) from None
            if guard.message or checkpoints.error:
                raise SystemExit(f"error: {guard.message or checkpoints.error}")
    if averaged:
        averaged.use_average()
    if chief:
        print(select(config, best, state), flush=True)
        print(evaluate_model(task, config, data, model, run_dir))


class Terminated(KeyboardInterrupt):
    """SIGTERM, what cluster schedulers send to stop a job: handled as Ctrl-C (save, exit)."""


def _raise_terminated(signum, frame):
    raise Terminated()


def stop_on_sigterm() -> None:
    """From now on SIGTERM interrupts training as Ctrl-C does (the main thread only)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def launch(task: Task, doc: str | None = None) -> None:
    """Run ``task``'s entry point: ``--help`` lists the task's and the training flags and exits 0."""
    if any(a in ("--help", "-h", "--helpshort") for a in sys.argv[1:]):
        print(help_text(task, doc))
        sys.exit(0)
    app.run(main(task))


def help_text(task: Task, doc: str | None = None) -> str:
    """``--help``: the entry point's docstring, then its flags in groups, the required ones marked."""
    required = required_flags(task)
    lines = [(doc or "").strip(), "", "Flags (also read from --flagfile=FILE, one --name=value per line):"]
    for title, specs in flag_groups(task):
        lines += ["", f"{title}:"]
        for spec in specs:
            flag = flags.FLAGS[spec.name]
            need = f" [{required[spec.name]}]" if spec.name in required else ""
            lines.append(f"  --{spec.name}{need}: {flag.help}\n    (default: {flag.default!r})")
    return "\n".join(lines)


def configure_runtime(task: Task, config: CommonConfig) -> None:
    """``--threads`` and ``--deterministic``, before TensorFlow's runtime starts (the thread
    pools are created with it; ``make_strategy`` lists devices, which starts it); TensorFlow's
    INFO lines (saver sharding, asset writes) only with ``--verbose``."""
    if not config.verbose:
        logging.set_verbosity(logging.WARNING)
    tf.config.optimizer.set_experimental_options({"remapping": False})  # avoids a noisy grappler error
    try:
        set_threads(config.threads, task.step_work(config))
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


def main(task: Task):
    """The ``app.run`` main of ``task``'s entry point."""

    def _main(argv):
        try:
            _run_main(argv)
        except app.UsageError as e:  # one message naming the flag or file, not absl's usage text
            print(f"error: {e}\nRun with --help for the flags.", file=sys.stderr, flush=True)
            raise SystemExit(1) from None

    def _run_main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        config = task.make_config(read_config(task.config_keys))
        configure_runtime(task, config)
        strategy = make_strategy(config.strategy)  # first op: multi-worker needs it before any other
        run(task, *prepare(task, config), strategy)

    return _main
