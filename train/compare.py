"""The paper's comparisons on any data the package reads (table 1 for MRI, table 2 for microscopy).

    python train/compare.py --flagfile=train/configs/compare_mri_demo.flags --run_dir=runs/compare_mri
    python train/compare.py --flagfile=train/configs/compare_microscopy_demo.flags --run_dir=runs/compare_mic

Trains every learned method with the same budget (--epochs x --steps_per_epoch generator
steps, the task's optimizers and schedule) on the same split, runs all methods on the same
test files and writes ``<run_dir>/eval/metrics.csv`` / ``metrics.md`` (one row per method:
mean and standard deviation over files), ``per_group`` and ``per_file`` tables, PNG panels
with all methods side by side and their error maps, and each learned model under
``<run_dir>/<method>/generator.keras``. ``--eval_only`` rebuilds the tables from those models.
Every learned method is evaluated at the same rule, ``--select`` (as in ``train/mri.py``):
``best``, the default, keeps the epoch of highest validation PSNR (``--val_files``), ``last``
the last epoch; the log names the epoch kept.

Methods: ``input`` (zero-filled / blurred), ``supervised`` (same generator, matched pairs),
``cyclegan`` (conventional, two deep generators), the self-supervised methods that need no
clean images (:mod:`tf_otcycle.self_supervised`: ``mc`` measurement consistency, ``ei``
equivariant imaging, ``ssdu`` k-space splitting, MRI only), ``classical`` (the task's: PLS-TV for MRI,
Richardson-Lucy with and without TV for the blur tasks, their settings chosen on the
``--val_files`` from the grid flags, the choice in the log), ``ot_cyclegan`` (the paper's), and the trivial
references ``zeros`` / ``mean`` where the task offers them. The library is :mod:`tf_otcycle.comparison`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# TensorFlow's C++ logs only with --verbose: decided before the package imports TensorFlow
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if "--verbose" in sys.argv else os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from tf_otcycle import run, tasks  # noqa: E402
from tf_otcycle.comparison import (  # noqa: E402, F401  (build_model, build, train, load: earlier public names)
    COMPARISON_FLAGS,
    KNOWN,
    LEARNED,
    build,
    build_model,
    check_flags,
    compare,
    comparison_config,
    load,
    methods_for,
    train,
)

for _name in tasks.NAMES:  # every task's flags; the chosen task's shared defaults are applied in main
    run.define_flags(tasks.get(_name))
for _spec in COMPARISON_FLAGS:  # --application, --methods, --supervised_loss, --supervised_ema_momentum
    run.define(_spec)

FLAGS = flags.FLAGS
COMPARE_KEYS = [spec.name for spec in COMPARISON_FLAGS]


def entry_point() -> tasks.Task:
    """The chosen task (kept under this name for scripts written against earlier versions)."""
    return tasks.get(FLAGS.application)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    task = entry_point()
    run.apply_defaults(task.common_defaults)
    config = comparison_config(task, **run.read_config(task.config_keys + COMPARE_KEYS))
    check_flags(task, config)
    run.configure_runtime(task, config)  # --threads, --deterministic: before any TensorFlow op
    config, data = run.prepare(task, config)
    table = compare(task, config, data)
    print(f"\nComparison ({task.describe(config, data)}), {Path(config.run_dir) / 'eval' / 'metrics.csv'}:\n{table}")


if __name__ == "__main__":
    app.run(main)
