"""Stacks larger than memory: OME-Zarr (NGFF 0.4 / 0.5) and OME-TIFF read lazily, OME-Zarr
written block by block.

Reading gives a :class:`LazyStack`: a ``(D, H, W)`` view of the file's full-resolution
level (OME-Zarr: ``multiscales[0].datasets[0]``; OME-TIFF: its first series through
tifffile's zarr store) from which windows are read on demand, with the voxel size in
micrometres from the metadata (NGFF ``coordinateTransformations`` scale with the axes'
units; OME ``PhysicalSize*``). Non-spatial axes are fixed: a channel axis of more than
one channel needs ``channel``, a time axis must have one point.

Writing creates an NGFF 0.5 image (zarr format 3): one level ``0``, axes ``z y x`` in
micrometres with the given voxel size as its scale, chunks of ``chunks`` voxels. The group
is written under a temporary name beside the target and renamed when complete
(:func:`writer`), so an interrupted run leaves no half-written image under the target name.
Needs the optional ``omezarr`` extra (zarr >= 3) for OME-Zarr; OME-TIFF needs only tifffile.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

_UNITS = {"micrometer": 1.0, "micron": 1.0, "um": 1.0, "µm": 1.0, "nanometer": 1e-3, "nm": 1e-3,
          "millimeter": 1e3, "mm": 1e3}


class OmeZarrFormatError(ValueError):
    """A file is not a readable OME-Zarr / OME-TIFF stack; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class LazyStack:
    """A ``(D, H, W)`` view of an on-disk array; ``stack[z0:z1, y0:y1, x0:x1]`` reads that window.

    Attributes:
        array: the stored array (zarr, or anything indexable with NumPy semantics).
        index: one entry per stored axis: ``None`` for the spatial axes (in z, y, x order of
            appearance), an integer for fixed axes (channel, time, a missing z).
        voxel_size: ``(dz, dy, dx)`` in micrometres, or None when the metadata do not say.
        path: the file, for messages.
    """

    array: object
    index: tuple
    voxel_size: tuple[float, float, float] | None
    path: str

    @property
    def shape(self) -> tuple[int, int, int]:
        sizes = [n for n, i in zip(self.array.shape, self.index) if i is None]
        return tuple([1] * (3 - len(sizes)) + sizes)

    def __getitem__(self, window: tuple[slice, slice, slice]) -> np.ndarray:
        spatial = list(window)[3 - sum(i is None for i in self.index):]
        key, k = [], 0
        for i in self.index:
            if i is None:
                key.append(spatial[k])
                k += 1
            else:
                key.append(i)
        block = np.asarray(self.array[tuple(key)], np.float32)
        return block.reshape([s.stop - s.start for s in _bounded(window, self.shape)])

    def min_max(self, block: int = 128) -> tuple[float, float]:
        """The stack's minimum and maximum, read ``block``-voxel windows at a time (bounded memory)."""
        lo, hi = np.inf, -np.inf
        for window in blocks(self.shape, (block,) * 3):
            values = self[window]
            lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
        if not np.isfinite(lo) or not np.isfinite(hi):
            raise OmeZarrFormatError(f"{self.path}: holds NaN or Inf")
        return lo, hi


def _bounded(window, shape):
    return [slice(s.start or 0, min(s.stop, n)) for s, n in zip(window, shape)]


def blocks(shape: Sequence[int], size: Sequence[int]) -> Iterator[tuple[slice, ...]]:
    """The windows of a grid of ``size`` blocks covering ``shape`` (the last ones clipped)."""
    ranges = [range(0, n, s) for n, s in zip(shape, size)]
    for starts in itertools.product(*ranges):
        yield tuple(slice(a, min(a + s, n)) for a, s, n in zip(starts, size, shape))


def is_ome_zarr(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an OME-Zarr image (a ``.zarr`` folder, or one with zarr metadata)."""
    p = Path(path)
    return str(path).rstrip("/").endswith(".zarr") or (p / "zarr.json").is_file() or (p / ".zattrs").is_file()


def _zarr():
    try:
        import zarr
    except ImportError:
        raise ImportError("OME-Zarr needs the optional extra: pip install 'tf_otcycle[omezarr]' (zarr >= 3)") from None
    return zarr


def open_stack(path: str | os.PathLike, channel: int | None = None) -> LazyStack:
    """A lazy ``(D, H, W)`` view of an OME-Zarr image or an OME-TIFF (see the module docstring).

    Raises:
        OmeZarrFormatError: no readable image, no multiscales metadata, axes that do not
            reduce to ``(z,) y x``; the message names the file.
    """
    path = str(path)
    if is_ome_zarr(path):
        return _open_zarr(path, channel)
    return _open_tiff(path, channel)


def _open_zarr(path: str, channel: int | None) -> LazyStack:
    zarr = _zarr()
    try:
        group = zarr.open_group(path, mode="r")
    except Exception as e:  # zarr raises several types for a missing or corrupt store
        raise OmeZarrFormatError(f"{path}: not a readable zarr group ({type(e).__name__}: {e})") from None
    attrs = dict(group.attrs)
    meta = attrs.get("ome", attrs)  # NGFF 0.5 nests under "ome"; 0.4 keeps "multiscales" at the top
    try:
        multiscale = meta["multiscales"][0]
        axes = [(a["name"], a.get("type", ""), a.get("unit")) if isinstance(a, dict) else (a, "", None)
                for a in multiscale["axes"]]
        dataset = multiscale["datasets"][0]
        array = group[dataset["path"]]
    except (KeyError, IndexError, TypeError) as e:
        raise OmeZarrFormatError(f"{path}: no OME-NGFF multiscales image ({type(e).__name__}: {e})") from None
    scale = next((t["scale"] for t in dataset.get("coordinateTransformations", []) if t.get("type") == "scale"), None)
    voxel = _voxel_size([(n, u) for n, _, u in axes], scale)
    return LazyStack(array, _index(path, [n for n, _, _ in axes], array.shape, channel), voxel, path)


def _open_tiff(path: str, channel: int | None) -> LazyStack:
    import tifffile
    zarr = _zarr()

    from tf_otcycle.data.tiff import read_voxel_size

    try:
        with tifffile.TiffFile(path) as t:
            series = t.series[0]
            axes, shape = series.axes, series.shape
    except (OSError, ValueError, tifffile.TiffFileError) as e:
        raise OmeZarrFormatError(f"{path}: not a readable TIFF ({type(e).__name__}: {e})") from None
    array = zarr.open(tifffile.imread(path, aszarr=True), mode="r")
    names = [{"Q": "z", "I": "z"}.get(a, a.lower()) for a in axes]
    return LazyStack(array, _index(path, names, shape, channel), read_voxel_size(path), path)


def _index(path: str, names: list[str], shape: Sequence[int], channel: int | None) -> tuple:
    """``None`` for each spatial axis, a fixed index for every other axis (see :class:`LazyStack`)."""
    if not {"y", "x"} <= set(names):
        raise OmeZarrFormatError(f"{path}: axes {names} have no y and x")
    index = []
    for name, n in zip(names, shape):
        if name in ("z", "y", "x"):
            index.append(None)
        elif name == "c":
            if n > 1 and channel is None:
                raise OmeZarrFormatError(f"{path}: {n} channels; choose one with --channel")
            if channel is not None and not 0 <= channel < n:
                raise OmeZarrFormatError(f"{path}: --channel {channel} out of range (the image has {n})")
            index.append(channel or 0)
        elif n == 1:
            index.append(0)
        else:
            raise OmeZarrFormatError(f"{path}: axis {name!r} has {n} entries; only z, y, x and one channel are read")
    return tuple(index)


def _voxel_size(axes: list[tuple[str, str | None]], scale: Sequence[float] | None) -> tuple[float, float, float] | None:
    """``(dz, dy, dx)`` in micrometres from an NGFF scale and the axes' units (None if not given)."""
    if scale is None:
        return None
    size = {}
    for (name, unit), s in zip(axes, scale):
        if name in ("z", "y", "x"):
            if unit is not None and unit not in _UNITS:
                return None
            size[name] = float(s) * _UNITS.get(unit or "micrometer", 1.0)
    if {"y", "x"} - set(size):
        return None
    return (size.get("z", 1.0), size["y"], size["x"])


def ngff_attributes(voxel_size: Sequence[float] | None, name: str) -> dict:
    """NGFF 0.5 ``ome`` attributes of a single-level ``z y x`` image with that voxel size (µm)."""
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in ("z", "y", "x")]
    scale = [float(v) for v in voxel_size] if voxel_size else [1.0, 1.0, 1.0]
    return {"ome": {"version": "0.5", "multiscales": [{
        "name": name, "axes": axes,
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
    }]}}


@contextlib.contextmanager
def writer(path: str | os.PathLike, shape: Sequence[int], voxel_size: Sequence[float] | None,
           chunks: Sequence[int] = (64, 64, 64), dtype=np.float32):
    """Yield a writable ``(D, H, W)`` zarr array of a new NGFF 0.5 image at ``path``.

    The image appears under ``path`` only when the block exits without error (atomic
    rename of the finished folder; an existing image is replaced then)."""
    zarr = _zarr()

    from tf_otcycle.io_utils import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        group.attrs.update(ngff_attributes(voxel_size, path.stem))
        chunks = tuple(min(int(c), int(n)) for c, n in zip(chunks, shape))
        yield group.create_array("0", shape=tuple(int(n) for n in shape), chunks=chunks, dtype=dtype, fill_value=0,
                                 dimension_names=("z", "y", "x"))


def read_attributes(path: str | os.PathLike) -> dict:
    """The group attributes of an OME-Zarr image (``zarr.json`` or ``.zattrs``) as a dict."""
    p = Path(path)
    for name in ("zarr.json", ".zattrs"):
        if (p / name).is_file():
            data = json.loads((p / name).read_text())
            return data.get("attributes", data) if name == "zarr.json" else data
    raise OmeZarrFormatError(f"{path}: no zarr.json or .zattrs")
