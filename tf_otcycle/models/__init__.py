"""Network builders (U-Net generators, (multi-scale) PatchGAN critics) and compiled inference."""

from tf_otcycle.models.critics import build_multiscale_patchgan, build_patchgan
from tf_otcycle.models.predict import input_multiple, padded, predictor
from tf_otcycle.models.unet import build_unet

__all__ = ["build_multiscale_patchgan", "build_patchgan", "build_unet", "input_multiple", "padded", "predictor"]
