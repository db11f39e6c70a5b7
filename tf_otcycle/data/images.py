"""2-D grayscale images (widefield fluorescence): TIFF or PNG, 8/16-bit integer or float.

Images are ``(H, W)`` arrays; a TIFF with one plane ``(1, H, W)`` or one channel
``(H, W, 1)`` is read as ``(H, W)``. Normalisation and patches are those of the TIFF stacks
(:mod:`tf_otcycle.data.tiff`: min-max to [0, 1], random augmented square patches). Test
files are ``NAME_blurred.<ext>`` with the ground truth ``NAME_gt.<ext>`` beside them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
import tifffile

from tf_otcycle.data.tiff import TiffFormatError, check_values, normalize, read_tiff_array
from tf_otcycle.io_utils import atomic_path, atomic_write_bytes, open_binary, sibling

EXTENSIONS = (".tif", ".tiff", ".png")


class ImageFormatError(TiffFormatError):
    """A file is not a usable 2-D image; the message names the file."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a 2-D grayscale image ``(H, W)`` in its stored dtype.

    Raises:
        ImageFormatError: unknown extension, unreadable file, colour or multi-plane image,
            unsupported dtype, NaN or Inf values.
    """
    path = str(path)
    ext = Path(path).suffix.lower()
    if ext not in EXTENSIONS:
        raise ImageFormatError(f"{path}: expected one of {EXTENSIONS}")
    try:
        if ext == ".png":
            data = tf.io.decode_png(tf.io.read_file(path),
                                    dtype=tf.uint16 if _png_bit_depth(path) == 16 else tf.uint8).numpy()
        else:
            data = read_tiff_array(path, ImageFormatError)
    except ImageFormatError:
        raise
    except Exception as e:  # the decoders raise many types for corrupt files
        raise ImageFormatError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[-1] == 1:
        data = data[..., 0]
    elif data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise ImageFormatError(f"{path}: expected a 2-D grayscale image, got an array of shape {data.shape}")
    return check_values(path, data, ImageFormatError)


def _png_bit_depth(path: str) -> int:
    with open_binary(path) as f:
        head = f.read(25)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG signature")
    return head[24]


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write ``(H, W)`` atomically: PNG (uint8 or uint16) or TIFF (any supported dtype)."""
    path = Path(path)
    image = np.asarray(image)
    if path.suffix.lower() == ".png":
        if image.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"{path}: PNG holds uint8 or uint16, got {image.dtype}")
        atomic_write_bytes(path, tf.io.encode_png(image[..., None]).numpy())
        return
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, image, photometric="minisblack")


def gt_path_for(blurred_path: str | os.PathLike) -> str:
    """``NAME_blurred.<ext>`` -> ``NAME_gt.<ext>`` in the same folder (a URI stays a URI)."""
    p = Path(blurred_path)
    ext = p.suffix
    if ext.lower() not in EXTENSIONS:
        raise ImageFormatError(f"{p}: expected one of {EXTENSIONS}")
    stem = p.name[: -len(ext)]
    if not stem.endswith("_blurred"):
        raise ImageFormatError(f"{p}: test files must be named NAME_blurred{ext} (ground truth NAME_gt{ext})")
    return sibling(blurred_path, stem[: -len("_blurred")] + "_gt" + ext)


def load_domain(paths: Sequence[str], patch_size: int, min_size: int = 1, what: str = "files") -> list[np.ndarray]:
    """Read, check and normalise the images of one domain.

    Raises:
        ImageFormatError: a bad file, or a size below ``max(patch_size, min_size)``.
    """
    if not paths:
        raise ImageFormatError(f"{what}: no file")
    images = []
    need = max(patch_size, min_size)
    for path in paths:
        image = read_image(path)
        if min(image.shape) < need:
            raise ImageFormatError(f"{path}: size {image.shape} is smaller than the patch/kernel size {need}")
        images.append(normalize(image))
    return images
