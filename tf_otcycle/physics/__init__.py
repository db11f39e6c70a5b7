"""Physics of the two inverse problems: Fourier transforms, sampling masks, PSFs.

Pure functions (TensorFlow for the transforms, NumPy/SciPy for masks and PSFs); the Keras
layers that wrap them as forward operators live in :mod:`tf_otcycle.layers`.
"""

from tf_otcycle.physics.fft import (
    channels_to_complex,
    complex_to_channels,
    data_consistency,
    fft2c,
    fft2c_channels,
    ifft2c,
    ifft2c_channels,
)
from tf_otcycle.physics.masks import equispaced_mask, file_seed, make_mask, random_mask
from tf_otcycle.physics.psf import (
    born_wolf_intensity,
    born_wolf_psf,
    flat_psf,
    fwhm,
    gaussian_psf,
)

__all__ = [
    "born_wolf_intensity",
    "born_wolf_psf",
    "channels_to_complex",
    "complex_to_channels",
    "data_consistency",
    "equispaced_mask",
    "fft2c",
    "fft2c_channels",
    "file_seed",
    "flat_psf",
    "fwhm",
    "gaussian_psf",
    "ifft2c",
    "ifft2c_channels",
    "make_mask",
    "random_mask",
]
