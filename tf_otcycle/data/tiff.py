"""TIFF stacks: reading and checking volumes, normalisation, and the unpaired 3-D patch pipeline.

A stack is a multi-page TIFF whose pages are the z-slices: ``(D, H, W)`` after reading,
8/16-bit integer or float. Volumes are normalised to [0, 1] by their own minimum and
maximum (the paper normalises patches to [0, 1]); a depth below the patch depth is
extended by reflection (paper: 30 -> 64 slices).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
import tifffile
from scipy import ndimage

from tf_otcycle.io_utils import atomic_path, open_binary, sibling

SUPPORTED = (np.uint8, np.uint16, np.int16, np.uint32, np.int32, np.float32, np.float64)


class TiffFormatError(ValueError):
    """A file is not a usable TIFF stack; the message names the file."""


def read_stack(path: str | os.PathLike, channel: int | None = None) -> np.ndarray:
    """Read a TIFF stack as ``(D, H, W)`` in its stored dtype.

    The axes come from the file's own metadata (ImageJ hyperstacks, OME-TIFF; tifffile's
    ``series.axes``): axes of length one are dropped, a single 2-D plane (``YX``) is read as a
    stack of depth 1 (training and inference extend the depth by reflection), and of a
    multi-channel stack (``ZCYX``, ``CZYX``, ...) ``channel`` selects one channel (0-based;
    ignored for single-channel files, e.g. the ground truth of a multi-channel input).

    Raises:
        TiffFormatError: unreadable file, a multi-channel stack without ``channel`` (or with
            one out of range), time series or other extra axes, unsupported dtype, NaN/Inf.
    """
    path = str(path)
    data, axes = read_tiff_series(path)
    keep = [i for i, (a, n) in enumerate(zip(axes, data.shape)) if n > 1 or a in "ZYX"]
    data, axes = data.reshape([data.shape[i] for i in keep]), "".join(axes[i] for i in keep)
    if "C" in axes or "S" in axes:
        axis = axes.index("C" if "C" in axes else "S")
        count = data.shape[axis]
        if channel is None:
            raise TiffFormatError(f"{path}: a multi-channel stack (axes {axes}, {count} channels): choose one with "
                                  "--channel")
        if not 0 <= channel < count:
            raise TiffFormatError(f"{path}: --channel {channel} is out of range (axes {axes}, {count} channels)")
        data, axes = np.take(data, channel, axis=axis), axes.replace(axes[axis], "")
    if data.ndim == 2:
        data = data[None]  # a single plane: a stack of depth 1
    if data.ndim != 3:
        raise TiffFormatError(f"{path}: expected a stack (z, y, x) or a plane (y, x), got axes {axes} of shape "
                              f"{data.shape}")
    return check_values(path, data)


def read_tiff_series(path: str, error: type[ValueError] = TiffFormatError) -> tuple[np.ndarray, str]:
    """The first series of a TIFF and its axes string (tifffile's: ``Z``, ``C``, ``Y``, ``X``,
    ``T``, ``S`` samples, ``Q`` unknown), checked like :func:`read_tiff_array`."""
    try:
        with open_binary(path) as f, tifffile.TiffFile(f) as t:
            series = t.series[0]
            f.seek(0, os.SEEK_END)
            if t.pages[0].compression == 1 and series.size * series.dtype.itemsize > f.tell():
                raise error(f"{path}: declares shape {series.shape} ({series.dtype}), more data than the file holds")
            data, axes = np.asarray(series.asarray()), series.axes
    except error:
        raise
    except Exception as e:  # tifffile raises many types for corrupt files
        raise error(f"{path}: not a readable TIFF file ({type(e).__name__}: {e})") from None
    if len(axes) != data.ndim:  # not expected from tifffile; fall back to "unknown" axes
        axes = "Q" * (data.ndim - 2) + "YX"
    return data, _name_unknown_axes(axes)


def _name_unknown_axes(axes: str) -> str:
    """Name the z axis of files that do not: a plain multi-page TIFF reads as ``QYX`` (or
    ``IYX``), and tifffile writes a 3- or 4-page array as planar samples (``SYX``); in each
    the pages are the z-slices. Contiguous samples (``YXS``, RGB) stay channels."""
    if "Z" in axes:
        return axes
    for unknown in ("Q", "I", "S"):
        if axes.count(unknown) == 1 and axes.index(unknown) < len(axes) - 2:
            return axes.replace(unknown, "Z")
    return axes


def read_tiff_array(path: str, error: type[ValueError] = TiffFormatError) -> np.ndarray:
    """The first series of a TIFF (local path or URI) as an array; ``error`` naming ``path`` when
    the file is unreadable, or when it declares more uncompressed pixel data than it holds
    (a corrupt size that would otherwise be allocated and read)."""
    return read_tiff_series(path, error)[0]


def check_values(path: str, data: np.ndarray, error: type[ValueError] = TiffFormatError) -> np.ndarray:
    """``data`` if its dtype is supported and it holds no NaN/Inf; else ``error`` naming ``path``."""
    if data.dtype.type not in SUPPORTED:
        raise error(f"{path}: unsupported dtype {data.dtype}")
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise error(f"{path}: contains NaN or Inf values")
    return data


def write_stack(path: str | os.PathLike, volume: np.ndarray, voxel_size: Sequence[float] | None = None) -> None:
    """Write ``(D, H, W)`` as a multi-page TIFF, atomically (temporary file, then rename).

    With ``voxel_size`` ``(dz, dy, dx)`` in micrometres the file is an ImageJ hyperstack
    (axes ZYX, ``spacing`` and resolution in µm, as Fiji reads them) when its dtype allows
    (uint8, uint16, float32); other dtypes are written as plain TIFF.
    """
    volume = np.asarray(volume)
    with atomic_path(path) as tmp:
        if voxel_size is not None and volume.ndim == 3 and volume.dtype in (np.uint8, np.uint16, np.float32):
            dz, dy, dx = (float(v) for v in voxel_size)
            tifffile.imwrite(tmp, volume, imagej=True, resolution=(1 / dx, 1 / dy),
                             metadata={"spacing": dz, "unit": "um", "axes": "ZYX"})
        else:
            tifffile.imwrite(tmp, volume, photometric="minisblack")


_UNITS_UM = {"um": 1.0, "\u00b5m": 1.0, "\\u00B5m": 1.0, "micron": 1.0, "nm": 1e-3, "mm": 1e3}


def read_voxel_size(path: str | os.PathLike) -> tuple[float, float, float] | None:
    """``(dz, dy, dx)`` in micrometres from the file's metadata: an ImageJ stack's ``spacing``
    and resolution tags, or an OME-TIFF's ``PhysicalSizeZ/Y/X`` (units um/µm/micron, nm or
    mm); None when the file does not say."""
    try:
        with open_binary(path) as f, tifffile.TiffFile(f) as t:
            size = _ome_voxel_size(t.ome_metadata) if t.is_ome else _imagej_voxel_size(t)
    except Exception:  # unreadable metadata: the caller falls back to its default
        return None
    return size if size is not None and min(size) > 0 and max(size) < 1e3 else None


def _imagej_voxel_size(t: tifffile.TiffFile) -> tuple[float, float, float] | None:
    meta = t.imagej_metadata or {}
    page = t.pages[0]
    xres, yres = page.tags.get("XResolution"), page.tags.get("YResolution")
    scale = _UNITS_UM.get(str(meta.get("unit", "um")))
    if "spacing" not in meta or xres is None or yres is None or scale is None:
        return None
    dx = xres.value[1] / xres.value[0] if xres.value[0] else 0.0
    dy = yres.value[1] / yres.value[0] if yres.value[0] else 0.0
    return float(meta["spacing"]) * scale, dy * scale, dx * scale


def _ome_voxel_size(xml: str | None) -> tuple[float, float, float] | None:
    import xml.etree.ElementTree as ET

    if not xml:
        return None
    pixels = next((e for e in ET.fromstring(xml).iter() if e.tag.endswith("Pixels")), None)
    if pixels is None:
        return None
    sizes = []
    for axis in "ZYX":
        value, unit = pixels.get(f"PhysicalSize{axis}"), pixels.get(f"PhysicalSize{axis}Unit", "\u00b5m")
        scale = _UNITS_UM.get(unit)
        if value is None or scale is None:
            return None
        sizes.append(float(value) * scale)
    return tuple(sizes)


def normalize(volume: np.ndarray) -> np.ndarray:
    """Min-max normalisation to [0, 1], float32 (a constant volume gives zeros)."""
    v = volume.astype(np.float32)
    lo, hi = float(v.min()), float(v.max())
    return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)


def reflect_depth(volume: np.ndarray, depth: int) -> np.ndarray:
    """Extend the z axis to at least ``depth`` by reflection (symmetric about the end slices)."""
    d = volume.shape[0]
    if d >= depth:
        return volume
    before = (depth - d) // 2
    return np.pad(volume, ((before, depth - d - before), (0, 0), (0, 0)), mode="symmetric")


def load_domain(
    paths: Sequence[str], patch_size: int, min_size: int = 1, what: str = "files", channel: int | None = None
) -> list[np.ndarray]:
    """Read, check and normalise all stacks of one domain; reflect their depth to ``patch_size``.

    Raises:
        TiffFormatError: a bad file (see :func:`read_stack`), a file whose dtype differs from
            the domain's first file, or a lateral size below ``max(patch_size, min_size)``.
    """
    if not paths:
        raise TiffFormatError(f"{what}: no file")
    volumes, dtype = [], None
    for path in paths:
        v = read_stack(path, channel)
        if dtype is None:
            dtype = v.dtype
        elif v.dtype != dtype:
            raise TiffFormatError(f"{path}: dtype {v.dtype} differs from {dtype} of {paths[0]} ({what} must share one "
                                  "dtype)")
        need = max(patch_size, min_size)
        if v.shape[1] < need or v.shape[2] < need:
            raise TiffFormatError(f"{path}: lateral size {v.shape[1:]} is smaller than the patch/kernel size {need}")
        if v.shape[0] * 2 < min_size:
            plane = " (a single 2-D plane: train/deblur2d.py deblurs 2-D images)" if v.shape[0] == 1 else ""
            raise TiffFormatError(f"{path}: depth {v.shape[0]} is too small for the kernel size {min_size}{plane}")
        volumes.append(reflect_depth(normalize(v), patch_size))
    return volumes


SCALE_AUGMENT = ("both", "sharp", "none")


def random_patch(volume: np.ndarray, size: int, rng: np.random.RandomState, augment: bool = True,
                 zoom: bool = True) -> np.ndarray:
    """A random ``size^3`` patch of a volume (``size^2`` of an image) with the paper's
    augmentations, float32.

    Translation (random position), scale (with ``zoom``: by 0.8-1.25 around a randomly placed
    crop), lateral rotation by multiples of 90 degrees and flips along each axis. The rotations
    and flips commute with a widefield PSF; a zoom does not (it widens or narrows the blur and
    smooths the noise), so measurements are best cut without it.
    """
    cube = (size,) * volume.ndim
    scale = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))) if augment and zoom else 1.0
    extent = [min(n, max(4, int(round(size * scale)))) for n in volume.shape]
    start = [rng.randint(0, n - e + 1) for n, e in zip(volume.shape, extent)]
    patch = volume[tuple(slice(s, s + e) for s, e in zip(start, extent))]
    if patch.shape != cube:
        patch = ndimage.zoom(patch, [size / e for e in patch.shape], order=1, grid_mode=True, mode="grid-mirror")
        patch = patch[tuple(slice(0, size) for _ in cube)]
    if augment:
        patch = np.rot90(patch, k=rng.randint(4), axes=(-2, -1))
        for axis in range(volume.ndim):
            if rng.rand() < 0.5:
                patch = np.flip(patch, axis)
    return np.ascontiguousarray(np.clip(patch, 0, 1), np.float32)


def unpaired_volume_dataset(
    sharp: Sequence[np.ndarray],
    blurred: Sequence[np.ndarray],
    patch_size: int,
    batch_size: int = 1,
    seed: int = 0,
    augment: bool = True,
    scale_augment: str = "both",
) -> tf.data.Dataset:
    """Infinite batches ``{"x": sharp patches, "y": blurred patches}``, each ``(B, P, P, P, 1)``
    (``(B, P, P, 1)`` for 2-D images).

    Each element draws a volume and a patch with its own ``RandomState`` seeded from a
    ``seed``-ed stream, in parallel map calls; batches are prefetched. ``scale_augment``
    (``SCALE_AUGMENT``) says which domains are also zoomed: both (the paper), sharp (the image
    domain only: a zoomed measurement no longer has the PSF H learns) or none.
    """
    if scale_augment not in SCALE_AUGMENT:
        raise ValueError(f"scale_augment must be one of {SCALE_AUGMENT}, got {scale_augment!r}")

    def domain(volumes, offset):
        zoom = scale_augment == "both" or (scale_augment == "sharp" and offset == 0)

        def draw(s):
            rng = np.random.RandomState(int(s) % (2**32))
            return random_patch(volumes[rng.randint(len(volumes))], patch_size, rng, augment, zoom)

        def to_patch(s):
            p = tf.numpy_function(draw, [s], tf.float32, stateful=False)
            return tf.ensure_shape(p, [patch_size] * volumes[0].ndim)[..., None]

        return tf.data.Dataset.random(seed=seed + offset).map(to_patch, num_parallel_calls=tf.data.AUTOTUNE)

    ds = tf.data.Dataset.zip(domain(sharp, 0), domain(blurred, 1)).map(lambda x, y: {"x": x, "y": y})
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def gt_path_for(blurred_path: str | os.PathLike) -> str:
    """``NAME_blurred.tif`` -> ``NAME_gt.tif`` in the same folder (a URI stays a URI)."""
    p = Path(blurred_path)
    stem = p.name
    for suffix in (".tiff", ".tif"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            ext = suffix
            break
    else:
        raise TiffFormatError(f"{p}: expected a .tif or .tiff file")
    if not stem.endswith("_blurred"):
        raise TiffFormatError(f"{p}: test files must be named NAME_blurred.tif (ground truth NAME_gt.tif)")
    return sibling(blurred_path, stem[: -len("_blurred")] + "_gt" + ext)


def paired_volume_dataset(
    sharp: Sequence[np.ndarray], blurred: Sequence[np.ndarray], patch_size: int, batch_size: int = 1,
    seed: int = 0, augment: bool = True,
) -> tf.data.Dataset:
    """Infinite *matched* batches ``{"x", "y"}``: the same patch (same augmentation) of each
    ``blurred[i]`` and its ground truth ``sharp[i]``, for the supervised baseline."""
    if len(sharp) != len(blurred) or any(a.shape != b.shape for a, b in zip(sharp, blurred)):
        raise ValueError("sharp/blurred: expected matched volumes of equal shapes")

    def draw(s):
        rng = np.random.RandomState(int(s) % (2**32))
        i = rng.randint(len(blurred))
        state = rng.get_state()
        y = random_patch(blurred[i], patch_size, rng, augment)
        rng.set_state(state)
        return random_patch(sharp[i], patch_size, rng, augment), y

    def to_pair(s):
        x, y = tf.numpy_function(draw, [s], [tf.float32, tf.float32], stateful=False)
        shape = [patch_size] * blurred[0].ndim
        return {"x": tf.ensure_shape(x, shape)[..., None], "y": tf.ensure_shape(y, shape)[..., None]}

    ds = tf.data.Dataset.random(seed=seed).map(to_pair, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
