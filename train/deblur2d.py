"""Unsupervised blind deblurring of 2-D widefield fluorescence images with the OT-cycleGAN.

    python train/deblur2d.py --flagfile=train/configs/deblur2d_demo.flags --run_dir=runs/deblur2d

Learns G (2-D U-Net) and the 2-D PSF from unpaired blurred (--blurred_files) and sharp
(--sharp_files) TIFF or PNG images, evaluates on --test_files (``NAME_blurred`` beside
``NAME_gt``), exports G and the learned PSF. Everything specific is in
:mod:`tf_otcycle.tasks.deblur2d`; the run flow in ``train/common.py``.
"""

from __future__ import annotations

import common  # train/common.py: the shared run flow

from tf_otcycle.tasks.deblur2d import TASK

common.define_flags(TASK)

if __name__ == "__main__":
    common.launch(TASK, __doc__)
