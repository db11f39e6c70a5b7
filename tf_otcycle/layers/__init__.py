"""Keras layers: the physics (the MRI ``FFTMask``, the learned blur ``PSFConv3D`` /
``PSFConv2D``), the critics' random crops and pool of past fakes, and the generators'
instance normalisation."""

from tf_otcycle.layers.crop import RandomSpatialCrop
from tf_otcycle.layers.fake_pool import FakePool
from tf_otcycle.layers.fft_mask import FFTMask
from tf_otcycle.layers.normalization import InstanceNormalization
from tf_otcycle.layers.psf_conv import PSFConv, PSFConv2D, PSFConv3D

__all__ = ["FakePool", "FFTMask", "InstanceNormalization", "PSFConv", "PSFConv2D", "PSFConv3D", "RandomSpatialCrop"]
