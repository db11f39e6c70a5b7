"""Unsupervised blind deblurring of 2-D widefield fluorescence images with the OT-cycleGAN.

    python train/deblur2d.py --flagfile=train/configs/deblur2d_demo.flags --run_dir=runs/deblur2d

Learns G (2-D U-Net) and the 2-D PSF from unpaired blurred (--blurred_files) and sharp
(--sharp_files) TIFF or PNG images, evaluates on --test_files (``NAME_blurred`` beside
``NAME_gt``), exports G and the learned PSF. Everything specific is in
tf_otcycle/tasks/deblur2d.py; the run flow in tf_otcycle/run.py.
"""

from __future__ import annotations

import os
import sys

# TensorFlow's C++ logs only with --verbose: decided before the package imports TensorFlow
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if "--verbose" in sys.argv else os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")


from tf_otcycle import run  # noqa: E402
from tf_otcycle.tasks.deblur2d import TASK  # noqa: E402

run.define_flags(TASK)

if __name__ == "__main__":
    run.launch(TASK, __doc__)
