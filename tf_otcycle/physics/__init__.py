"""Physics of the inverse problems: Fourier transforms, sampling masks, PSFs, convolution,
the forward operators with their adjoints (:mod:`tf_otcycle.physics.operators`), the beads
of a measured PSF image (:mod:`tf_otcycle.physics.beads`), the
camera's Poisson-Gaussian noise (:mod:`tf_otcycle.physics.noise`) and the emission-wavelength
fit of a widefield PSF (:mod:`tf_otcycle.physics.psf_fit`).

Pure functions (TensorFlow for the transforms and operators, NumPy/SciPy for masks and
PSFs); the Keras layers that wrap the operators for training live in :mod:`tf_otcycle.layers`.
"""

from tf_otcycle.physics.convolution import convolve, convolve_adjoint
from tf_otcycle.physics.fft import (
    channels_to_complex,
    complex_to_channels,
    data_consistency,
    fft2c,
    fft2c_channels,
    ifft2c,
    ifft2c_channels,
)
from tf_otcycle.physics.masks import MaskSpec, equispaced_mask, file_seed, make_mask, random_mask
from tf_otcycle.physics.noise import estimate_poisson_gaussian, poisson_gaussian
from tf_otcycle.physics.operators import (
    Adjoint,
    CartesianSampling,
    Composition,
    Convolution,
    LinearOperator,
    undersampling,
)
from tf_otcycle.physics.psf import (
    blur,
    born_wolf_intensity,
    born_wolf_psf,
    flat_psf,
    fwhm,
    gaussian_psf,
    odd_centred,
)
from tf_otcycle.physics.psf_fit import WavelengthFit, fit_wavelength, measurement_misfit

__all__ = [
    "estimate_poisson_gaussian",
    "poisson_gaussian",
    "Adjoint",
    "CartesianSampling",
    "Composition",
    "Convolution",
    "LinearOperator",
    "convolve",
    "convolve_adjoint",
    "odd_centred",
    "undersampling",
    "blur",
    "born_wolf_intensity",
    "WavelengthFit",
    "fit_wavelength",
    "measurement_misfit",
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
    "MaskSpec",
    "random_mask",
]
