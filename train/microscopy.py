"""Unsupervised blind deconvolution microscopy with the OT-cycleGAN (paper 4.2, appendix D.2).

    python train/microscopy.py --flagfile=train/configs/microscopy.flags --run_dir=runs/microscopy

Learns the deconvolution network G (3-D U-Net) *and* the PSF h (``PSFConv3D``) from
unpaired blurred (--blurred_files) and sharp (--sharp_files) TIFF stacks, with two
multi-scale PatchGAN critics. Evaluates on --test_files (``NAME_blurred.tif`` beside
``NAME_gt.tif``), exports G and the learned PSF. Re-running the same command resumes.
What is microscopy-specific lives in tf_otcycle/tasks/microscopy.py; the run flow in
tf_otcycle/run.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

# TensorFlow's C++ logs only with --verbose: decided before the package imports TensorFlow
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if "--verbose" in sys.argv else os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import flags  # noqa: E402

from tf_otcycle import run  # noqa: E402
from tf_otcycle.tasks.microscopy import TASK  # noqa: E402

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
