"""Unsupervised accelerated MRI with the OT-cycleGAN (paper section 4.1, appendix D.1).

    python train/mri.py --flagfile=train/configs/mri.flags --run_dir=runs/mri

Trains G (2-D U-Net) on unpaired clean images (--clean_files) and undersampled
acquisitions of other subjects (--measured_files), evaluates on --test_files, and exports
G. Re-running the same command resumes from the last checkpoint. What is MRI-specific lives
in tf_otcycle/tasks/mri.py; the run flow in tf_otcycle/run.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

# TensorFlow's C++ logs only with --verbose: decided before the package imports TensorFlow
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if "--verbose" in sys.argv else os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import flags  # noqa: E402

from tf_otcycle import run  # noqa: E402
from tf_otcycle.tasks.mri import TASK  # noqa: E402

run.define_flags(TASK)
FLAGS = flags.FLAGS
CONFIG_KEYS = TASK.config_keys
COMMON_DEFAULTS = TASK.common_defaults


def build_model(config: Mapping, steps_per_epoch: int = 1, data: dict | None = None):
    """The compiled OT-cycleGAN of this entry point (call inside a strategy scope); ``config``:
    the task's configuration, or a dict of every flag's value."""
    return TASK.build_model(TASK.make_config(config), data, steps_per_epoch)


if __name__ == "__main__":
    run.launch(TASK, __doc__)
