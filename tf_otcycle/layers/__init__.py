"""Keras layers for the physics: the MRI ``FFTMask`` and the learned blur ``PSFConv3D`` / ``PSFConv2D``.

Instance normalisation in the networks is ``keras.layers.GroupNormalization(groups=-1)``
(one group per channel), so no custom normalisation layer is needed.
"""

from tf_otcycle.layers.crop import RandomSpatialCrop
from tf_otcycle.layers.fft_mask import FFTMask
from tf_otcycle.layers.psf_conv import PSFConv, PSFConv2D, PSFConv3D

__all__ = ["FFTMask", "PSFConv", "PSFConv2D", "PSFConv3D", "RandomSpatialCrop"]
