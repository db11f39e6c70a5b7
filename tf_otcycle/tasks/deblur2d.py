"""Blind 2-D deblurring of widefield fluorescence images: the third application, one module.

The OT-cycleGAN of the microscopy task in two dimensions: ``H x = h * x`` with a learned
non-negative 2-D PSF (``PSFConv2D``, unit sum, with a gain), a 2-D U-Net with a sigmoid
output, two multi-scale 2-D PatchGAN critics, Richardson-Lucy as the classical baseline.
Images are 2-D TIFF or PNG, 8/16-bit or float (:mod:`tf_otcycle.data.images`), each
normalised to [0, 1] by its own minimum and maximum; test files are ``NAME_blurred.<ext>``
beside ``NAME_gt.<ext>``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tf_otcycle.data import images
from tf_otcycle.export import export_settings
from tf_otcycle.physics.psf import born_wolf_psf, flat_psf, gaussian_psf
from tf_otcycle.tasks.base import numbers
from tf_otcycle.tasks.blur import BlurConfig, BlurTask
from tf_otcycle.tasks.config import string


def _pair(text: str, name: str) -> tuple[float, float]:
    return numbers(text, name, 2)  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class Deblur2DConfig(BlurConfig):
    """The deblur2d task's flags: the blur tasks' and its own."""

    pixel_size: str = string("0.1,0.1", "Pixel size dy,dx in micrometres (Born & Wolf PSF, FWHM report).")
    gaussian_sigma_2d: str = string("1.5,1.5", "Gaussian initial PSF sigma y,x in pixels.")


class Deblur2DTask(BlurTask):
    name = "deblur2d"
    ndim = 2
    unit = "image"
    symmetry_axes = (1, 2)  # (B, H, W, C)
    config_class = Deblur2DConfig

    def validate(self, config):
        errors = super().validate(config)
        for name in ("pixel_size", "gaussian_sigma_2d"):
            try:
                _pair(config[name], name)
            except ValueError as e:
                errors.append(str(e))
        return errors

    # --- data: 2-D images instead of stacks ------------------------------------------------
    def read(self, path, config=None):
        return images.read_image(path)

    def gt_path(self, path):
        return images.gt_path_for(path)

    def load_domain(self, paths, config, what):
        return images.load_domain(paths, config.patch_size, self.psf_size(config), what)

    # --- the physics: a 2-D PSF --------------------------------------------------------------
    def model_psf(self, config):
        k = self.psf_size(config)
        if config.psf_init == "born_wolf":
            dy, dx = _pair(config.pixel_size, "pixel_size")
            psf = born_wolf_psf((1, k, k), (1.0, dy, dx), config.wavelength / 1000, config.numerical_aperture,
                                config.refractive_index)[0]
        elif config.psf_init == "gaussian":
            sy, sx = _pair(config.gaussian_sigma_2d, "gaussian_sigma_2d")
            psf = gaussian_psf((1, k, k), (1.0, sy, sx))[0]
        else:
            psf = flat_psf((1, k, k))[0]
        return (psf / psf.sum()).astype(np.float32)

    def voxel_size(self, config):
        return _pair(config.pixel_size, "pixel_size")

    # --- export ------------------------------------------------------------------------------
    def inference_settings(self, config):
        return export_settings(
            "deblur2d", tile=config.patch_size, overlap=self.tile_overlap(config),
            pixel_size=list(self.voxel_size(config)), wavelength_nm=config.wavelength, psf_size=self.psf_size(config),
            normalization="min-max per image to [0, 1]",
        )


TASK = Deblur2DTask()
