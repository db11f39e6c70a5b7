"""Network builders: U-Net generators and (multi-scale) PatchGAN critics."""

from tf_otcycle.models.critics import build_multiscale_patchgan, build_patchgan
from tf_otcycle.models.unet import build_unet

__all__ = ["build_multiscale_patchgan", "build_patchgan", "build_unet"]
