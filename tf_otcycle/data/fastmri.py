"""fastMRI HDF5 files: validation, reading, and the unpaired tf.data pipelines for MRI.

File format (fastMRI knee/brain, as distributed):

* ``kspace``: complex64 ``(slices, H, W)`` single-coil or ``(slices, coils, H, W)``
  multi-coil, centred k-space, W = phase-encode columns;
* ``reconstruction_esc`` (single-coil) / ``reconstruction_rss`` (multi-coil): float32
  ``(slices, 320, 320)`` targets (absent from the challenge test sets);
* attributes ``acquisition``, ``max``, ``norm``, ``patient_id``; ``ismrmrd_header`` XML.

Images: ``ifft2c`` of each slice (root-sum-of-squares over coils for multi-coil files,
giving a real image), centre-cropped to ``crop_size`` x ``crop_size``.

Retrospective undersampling acts on the *cropped* image: ``y = H_m x`` with
``H_m = F^H P_m F`` on ``crop_size`` columns, which is exactly the operator the network
is trained with (``FFTMask``). Each slice is divided by ``std(|y|)``, the standard
deviation of the magnitude of its undersampled image (paper, appendix D.1); clean slices
use the same rule with their own mask, so both domains share one intensity scale.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import h5py
import numpy as np
import tensorflow as tf

from tf_otcycle.io_utils import (
    expand_files,  # noqa: F401  (re-exported: fastmri.expand_files)
    is_uri,
    open_binary,
)
from tf_otcycle.physics.fft import channels_to_complex, complex_to_channels, ifft2c
from tf_otcycle.physics.masks import MaskSpec, crop_mask, file_seed
from tf_otcycle.physics.operators import undersampling

_UNDERSAMPLING = undersampling()


# 2^30 complex64 values (8 GiB): ten times the largest fastMRI volume; larger declared shapes are refused.
MAX_KSPACE_ELEMENTS = 2**30


class FastMRIFormatError(ValueError):
    """A file is not a readable fastMRI HDF5 file; the message names the file."""


@dataclasses.dataclass(frozen=True)
class FastMRIFile:
    """What :func:`inspect_file` learned about one file."""

    path: str
    num_slices: int
    kspace_shape: tuple[int, ...]
    multicoil: bool
    target_key: str | None
    attrs: dict
    header: dict = dataclasses.field(default_factory=dict)
    # the file's 'mask' (W,) float32 0/1, read once at inspection: the k-space is an undersampled acquisition
    mask: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def has_mask(self) -> bool:
        """Whether the file holds its own undersampled acquisition (a ``mask`` dataset)."""
        return self.mask is not None


def inspect_file(path: str | os.PathLike, crop_size: int | None = None) -> FastMRIFile:
    """Open a fastMRI file and check its layout.

    Raises:
        FastMRIFormatError: unreadable file, missing or malformed ``kspace``, image
            smaller than ``crop_size``; the message names the file and the problem.
    """
    path = str(path)
    try:
        f = _open_h5(path)
    except (OSError, ValueError, tf.errors.OpError) as e:
        raise FastMRIFormatError(f"{path}: not a readable HDF5 file ({e})") from None
    try:
        with f:
            return _inspect_open(f, path, crop_size)
    except FastMRIFormatError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as e:  # h5py on corrupt metadata
        raise FastMRIFormatError(f"{path}: unreadable HDF5 structure ({type(e).__name__}: {e})") from None


def _inspect_open(f: h5py.File, path: str, crop_size: int | None) -> FastMRIFile:
    """The checks of :func:`inspect_file` on an open file."""
    if "kspace" not in f:
        raise FastMRIFormatError(f"{path}: no 'kspace' dataset (found: {sorted(f.keys())})")
    k = f["kspace"]
    if not isinstance(k, h5py.Dataset):
        raise FastMRIFormatError(f"{path}: 'kspace' is not a dataset")
    if not np.issubdtype(k.dtype, np.complexfloating):
        raise FastMRIFormatError(f"{path}: 'kspace' has dtype {k.dtype}, expected complex64")
    if k.ndim not in (3, 4):
        raise FastMRIFormatError(
            f"{path}: 'kspace' has shape {k.shape}, expected (slices, H, W) or (slices, coils, H, W)"
        )
    if min(k.shape) == 0:
        raise FastMRIFormatError(f"{path}: 'kspace' is empty (shape {k.shape})")
    if int(np.prod(k.shape, dtype=np.float64)) > MAX_KSPACE_ELEMENTS:
        raise FastMRIFormatError(f"{path}: 'kspace' declares shape {k.shape}, more than {MAX_KSPACE_ELEMENTS} "
                                 "elements: not a fastMRI acquisition (refused before reading)")
    h, w = k.shape[-2:]
    if crop_size is not None and (h < crop_size or w < crop_size):
        raise FastMRIFormatError(
            f"{path}: image {h}x{w} is smaller than crop_size {crop_size}"
        )
    mask = _read_mask(f, path, w) if "mask" in f else None
    multicoil = k.ndim == 4
    target_key = None
    preferred = ("reconstruction_rss", "reconstruction_esc")
    for key in preferred if multicoil else preferred[::-1]:
        if key in f:
            target_key = key
            break
    if target_key is not None:
        t = f[target_key]
        if not isinstance(t, h5py.Dataset) or t.ndim != 3 or t.shape[0] != k.shape[0] or (
                crop_size is not None and min(t.shape[1:]) < crop_size):
            raise FastMRIFormatError(f"{path}: '{target_key}' has shape {getattr(t, 'shape', None)}, expected "
                                     f"({k.shape[0]}, H, W) with H, W >= crop_size")
    attrs = {key: _plain(v) for key, v in f.attrs.items()}
    header = parse_ismrmrd_header(f["ismrmrd_header"][()], path) if "ismrmrd_header" in f else {}
    return FastMRIFile(path, int(k.shape[0]), tuple(int(s) for s in k.shape), multicoil, target_key, attrs,
                       header, mask)


def _read_mask(f: h5py.File, path: str, width: int) -> np.ndarray:
    """A file's ``mask`` dataset as ``(width,)`` float32 0/1, checked against the k-space width."""
    m = f["mask"]
    if not isinstance(m, h5py.Dataset) or m.ndim != 1 or m.shape[0] != width:
        raise FastMRIFormatError(
            f"{path}: 'mask' has shape {getattr(m, 'shape', None)}, expected ({width},) to match the k-space width"
        )
    mask = (np.asarray(m[()]) != 0).astype(np.float32)
    if not np.any(mask):
        raise FastMRIFormatError(f"{path}: 'mask' acquires no k-space column")
    mask.flags.writeable = False
    return mask


def _open_h5(path: str) -> h5py.File:
    """An HDF5 file by local path, or by URI through TensorFlow's file systems (gs://, s3://, file://)."""
    return h5py.File(open_binary(path), "r") if is_uri(path) else h5py.File(path, "r")


def parse_ismrmrd_header(xml: bytes | str, path: str = "") -> dict:
    """The fields fastMRI reads from ``ismrmrd_header``: encoded and recon matrix sizes and
    the phase-encode limits, with the zero-padded column range they imply.

    Returns:
        dict with ``encoded_size`` and ``recon_size`` ``(x, y, z)``, ``center`` and
        ``maximum`` of ``kspace_encoding_step_1``, and ``padding_left``/``padding_right``
        (fastMRI: ``left = enc_y // 2 - center``, ``right = left + maximum + 1``).

    Raises:
        FastMRIFormatError: the XML does not parse or lacks these fields.
    """
    import xml.etree.ElementTree as ET

    ns = {"m": "http://www.ismrm.org/ISMRMRD"}
    try:
        root = ET.fromstring(xml)

        def ints(tag):
            node = root.find(f"m:encoding/{tag}", ns)
            return tuple(int(node.find(f"m:{a}", ns).text) for a in ("x", "y", "z"))

        enc = ints("m:encodedSpace/m:matrixSize")
        recon = ints("m:reconSpace/m:matrixSize")
        limits = root.find("m:encoding/m:encodingLimits/m:kspace_encoding_step_1", ns)
        center = int(limits.find("m:center", ns).text)
        maximum = int(limits.find("m:maximum", ns).text)
    except (ET.ParseError, AttributeError, TypeError, ValueError) as e:
        raise FastMRIFormatError(f"{path}: unreadable 'ismrmrd_header' ({type(e).__name__}: {e})") from None
    left = enc[1] // 2 - center
    return {"encoded_size": enc, "recon_size": recon, "center": center, "maximum": maximum,
            "padding_left": left, "padding_right": left + maximum + 1}


def _plain(v):
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


def center_crop(x, size: int):
    """Centre crop of the last two axes to ``size`` x ``size`` (NumPy or TF), fastMRI offsets."""
    h, w = x.shape[-2], x.shape[-1]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def kspace_to_image(kspace: tf.Tensor, crop_size: int, multicoil: bool | None = None) -> tf.Tensor:
    """k-space ``(..., H, W)`` or ``(coils, H, W)`` slice -> cropped complex image.

    Single-coil ``(H, W)``: ``crop(ifft2c(k))``. Multi-coil ``(C, H, W)``:
    ``crop(sqrt(sum_c |ifft2c(k_c)|^2))`` as a complex tensor with zero phase.
    ``multicoil`` defaults to ``rank == 3``.
    """
    kspace = tf.convert_to_tensor(kspace, tf.complex64)
    image = ifft2c(kspace)
    if multicoil is None:
        multicoil = kspace.shape.rank == 3
    if multicoil:
        rss = tf.sqrt(tf.reduce_sum(tf.abs(image) ** 2, axis=0))
        image = tf.complex(rss, tf.zeros_like(rss))
    return _tf_center_crop(image, crop_size)


def _tf_center_crop(x: tf.Tensor, size: int) -> tf.Tensor:
    shape = tf.shape(x)
    top, left = (shape[-2] - size) // 2, (shape[-1] - size) // 2
    return x[..., top : top + size, left : left + size]


def undersample(image: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """``H_m x = ifft2c(m * fft2c(x))`` for complex ``(H, W)`` or ``(B, H, W)`` and mask ``(W,)``
    (:func:`tf_otcycle.physics.operators.undersampling` on the complex layout)."""
    image = tf.convert_to_tensor(image)
    batched = image if image.shape.rank == 3 else image[None]
    out = channels_to_complex(_UNDERSAMPLING(complex_to_channels(batched), {"mask": tf.cast(mask, tf.float32)}))
    return out if image.shape.rank == 3 else out[0]


def normalize_pair(image: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Return ``(x / s, H_m x / s, s)`` with ``s = std(|H_m x|)`` per slice.

    Args:
        image: complex ``(..., H, W)``, one slice or a stack of slices.
        mask: ``(W,)``.

    Returns:
        the two complex arrays and ``s`` of shape ``(...)``.
    """
    y = undersample(image, mask)
    scale = tf.math.reduce_std(tf.abs(y), axis=[-2, -1]) + 1e-12
    c = tf.cast(scale, tf.complex64)[..., None, None]
    return image / c, y / c, scale


# --- volumes for evaluation and inference -----------------------------------------------------


def read_volume(info: FastMRIFile, crop_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """All slices of a file as cropped complex images ``(S, crop, crop)`` and the target.

    The target is the file's ``reconstruction_*`` cropped to ``crop_size`` (None if absent).
    A file with a ``mask`` dataset gives its zero-filled images (k-space times the mask).
    """
    try:
        with _open_h5(info.path) as f:
            kspace = f["kspace"][()]
            if info.has_mask:
                kspace = kspace * np.asarray(f["mask"][()], np.float32)  # broadcasts over the last (W) axis
            target = None
            if info.target_key is not None:
                target = center_crop(np.asarray(f[info.target_key][()], np.float32), crop_size)
    except (OSError, ValueError, KeyError, TypeError) as e:  # corrupt data found only when read
        raise FastMRIFormatError(f"{info.path}: unreadable data ({type(e).__name__}: {e})") from None
    images = np.stack([kspace_to_image(kspace[i], crop_size, info.multicoil).numpy() for i in range(kspace.shape[0])])
    if not np.all(np.isfinite(images)):
        raise FastMRIFormatError(f"{info.path}: 'kspace' contains NaN or Inf")
    return images, target


def eval_mask(info_or_path, sampling: MaskSpec, num_cols: int) -> np.ndarray:
    """The reproducible test mask ``(num_cols,)`` of a file: ``sampling`` drawn with fastMRI's
    seed ``tuple(map(ord, fname))``."""
    path = info_or_path.path if isinstance(info_or_path, FastMRIFile) else str(info_or_path)
    return sampling(num_cols, seed=file_seed(Path(path).name))


def measurement_mask(info: FastMRIFile, sampling: MaskSpec, crop_size: int) -> np.ndarray:
    """The column mask ``(crop_size,)`` a file's test measurement is made under: its own
    (:func:`acquired_mask`) when it holds an acquisition, else its :func:`eval_mask`."""
    return acquired_mask(info, crop_size) if info.has_mask else eval_mask(info, sampling, crop_size)


def file_mask(info: FastMRIFile) -> np.ndarray:
    """The ``mask`` ``(W,)`` float32 0/1 of a file that holds its own undersampled acquisition
    (read and checked by :func:`inspect_file`; a copy)."""
    if info.mask is None:
        raise FastMRIFormatError(f"{info.path}: fully sampled (no 'mask' dataset), not an acquisition")
    return info.mask.copy()


def acquired_mask(info: FastMRIFile, crop_size: int) -> np.ndarray:
    """The column mask ``(crop_size,)`` of a file that holds its own undersampled acquisition:
    its ``mask`` on the centre crop's columns (:func:`tf_otcycle.physics.masks.crop_mask`:
    exact when the k-space is ``crop_size`` columns wide, the nearest-frequency approximation
    otherwise). Its measurement is ``H_m`` of the zero-filled crop, so it lies in ``H_m``'s range."""
    return crop_mask(file_mask(info), crop_size)


# --- training pipelines -----------------------------------------------------------------------


HDF5_READERS = ("h5py", "tensorflow_io")


def _h5py_slices(path, multicoil: bool):
    """Yield the k-space slices of one file, read one at a time with h5py (bounded memory)."""
    path = path.decode() if isinstance(path, bytes) else str(path)
    with _open_h5(path) as f:
        kspace = f["kspace"]
        for i in range(kspace.shape[0]):
            yield np.asarray(kspace[i], np.complex64)


def _tfio_slices(path: tf.Tensor, spec: tf.TensorSpec) -> tf.data.Dataset:
    """One file's k-space slices through tensorflow-io's HDF5 dataset (the optional ``tfio`` extra)."""
    try:
        import tensorflow_io as tfio
    except ImportError:
        raise ImportError("hdf5_reader='tensorflow_io' needs the optional extra: pip install 'tf_otcycle[tfio]' "
                          "(tensorflow-io 0.37.1 works with TensorFlow 2.16/2.17 only)") from None
    return tfio.IODataset.from_hdf5(path, dataset="/kspace", spec=spec)


def _slice_reader(multicoil: bool, reader: str = "h5py"):
    """``path -> dataset of k-space slices`` (single- or multi-coil) with ``reader``."""
    if reader not in HDF5_READERS:
        raise ValueError(f"hdf5 reader must be one of {HDF5_READERS}, got {reader!r}")
    spec = tf.TensorSpec([None] * (3 if multicoil else 2), tf.complex64)
    if reader == "tensorflow_io":
        return lambda p: _tfio_slices(p, spec)
    return lambda p: tf.data.Dataset.from_generator(_h5py_slices, args=(p, multicoil), output_signature=spec)


def _interleave(files: tf.data.Dataset, read, count: int) -> tf.data.Dataset:
    return files.interleave(read, cycle_length=max(1, min(count, 4)), num_parallel_calls=tf.data.AUTOTUNE,
                            deterministic=True)


def _slice_dataset(infos: Sequence[FastMRIFile], multicoil: bool, reader: str = "h5py") -> tf.data.Dataset:
    """Every k-space slice of the files of one kind (single- or multi-coil), files interleaved."""
    read = _slice_reader(multicoil, reader)
    paths = [i.path for i in infos if i.multicoil == multicoil]
    return _interleave(tf.data.Dataset.from_tensor_slices(paths), read, len(paths))


def image_dataset(infos: Sequence[FastMRIFile], crop_size: int, reader: str = "h5py") -> tf.data.Dataset:
    """Cropped complex images ``(crop, crop)`` of every slice of every file.

    ``reader``: ``"h5py"`` (default; local paths and TensorFlow file-system URIs) or
    ``"tensorflow_io"`` (its HDF5 dataset; needs the ``tfio`` extra)."""
    parts = [
        _slice_dataset(infos, mc, reader).map(lambda k, mc=mc: kspace_to_image(k, crop_size, mc),
                                              num_parallel_calls=tf.data.AUTOTUNE)
        for mc in (False, True)
        if any(i.multicoil == mc for i in infos)
    ]
    ds = parts[0]
    for p in parts[1:]:
        ds = ds.concatenate(p)
    return ds


def acquired_dataset(infos: Sequence[FastMRIFile], crop_size: int, reader: str = "h5py") -> tf.data.Dataset:
    """``(image, mask)`` for every slice of single-coil files that hold their own acquisition
    (fastMRI's challenge files): the zero-filled image ``crop(ifft2c(kspace * mask))``, complex
    ``(crop, crop)``, and the file's mask on the crop, :func:`acquired_mask` ``(crop,)``.

    Raises:
        FastMRIFormatError: a file without a ``mask``, or a multi-coil acquisition (its
            root-sum-of-squares is not a measurement of the single-coil ``H``).
    """
    check_acquisitions(infos)
    paths = [i.path for i in infos]
    masks = [file_mask(i) for i in infos]
    wide = tf.ragged.constant([m.tolist() for m in masks], dtype=tf.float32)
    narrow = np.stack([crop_mask(m, crop_size) for m in masks])
    read = _slice_reader(False, reader)

    def slices(path, w, c):
        return read(path).map(lambda k: (kspace_to_image(k * tf.cast(w, tf.complex64), crop_size, False), c))

    return _interleave(tf.data.Dataset.from_tensor_slices((paths, wide, narrow)), slices, len(paths))


def check_acquisitions(infos: Sequence[FastMRIFile]) -> None:
    """Raise :class:`FastMRIFormatError` naming the first file that is not a single-coil acquisition
    with its own ``mask`` (what :func:`acquired_dataset` can train on)."""
    for info in infos:
        if not info.has_mask:
            raise FastMRIFormatError(f"{info.path}: fully sampled (no 'mask' dataset), not an acquisition")
        if info.multicoil:
            raise FastMRIFormatError(
                f"{info.path}: a multi-coil undersampled acquisition; training needs single-coil ones (the root-sum-"
                "of-squares of aliased coil images is not a measurement of the single-coil operator H). Combine its "
                "coils into single-coil k-space first, or give fully sampled files.")


def _mask_from_seed(seed: tf.Tensor, sampling: MaskSpec, num_cols: int) -> tf.Tensor:
    """``sampling`` drawn with the integer ``seed`` (a scalar int64 tensor) -> ``(num_cols,)``."""

    def draw(s):
        return sampling(num_cols, seed=int(s) % (2**32))

    m = tf.numpy_function(draw, [seed], tf.float32, stateful=False)
    return tf.ensure_shape(m, [num_cols])


def flip_draws(seed: tf.Tensor) -> tf.Tensor:
    """Two booleans ``(up-down, left-right)``, each true with probability 1/2, drawn from ``seed``
    (a scalar int64 tensor, e.g. an element of ``tf.data.Dataset.random``, whose values lie in
    ``[0, 2^32)``)."""
    return tf.random.stateless_uniform([2], tf.stack([seed, tf.constant(13, tf.int64)])) < 0.5


def augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Flip a complex ``(H, W)`` image up-down and/or left-right as :func:`flip_draws` draws from ``seed``.

    Flips keep the physics: the flipped image's k-space is the flipped k-space.
    """
    bits = flip_draws(seed)
    image = tf.cond(bits[0], lambda: tf.reverse(image, [-2]), lambda: image)
    return tf.cond(bits[1], lambda: tf.reverse(image, [-1]), lambda: image)


def augment_acquired(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """:func:`augment` of a measured image ``(H, W)`` and its column mask ``(W,)``: an up-down flip
    keeps the mask, a left-right flip mirrors its frequencies (:func:`tf_otcycle.physics.masks.flip_mask`)."""
    bits = flip_draws(seed)
    image = tf.cond(bits[0], lambda: tf.reverse(image, [-2]), lambda: image)
    n = tf.shape(mask)[-1]
    mirrored = tf.math.floormod(2 * (n // 2) - tf.range(n), n)
    return tf.cond(bits[1], lambda: (tf.reverse(image, [-1]), tf.gather(mask, mirrored)),
                   lambda: (image, mask))


def affine_augment(image: tf.Tensor, seed: tf.Tensor, rotation: float, zoom: float) -> tf.Tensor:
    """Rotate a complex ``(H, W)`` image about its centre by an angle drawn uniformly in
    ``+-rotation`` degrees and zoom it by a factor drawn uniformly in ``[1 - zoom, 1 + zoom]``
    (> 1 enlarges), both from ``seed`` (a scalar int64 tensor); bilinear on the real and
    imaginary parts, reflected at the border.

    Applied to a fully sampled image before it is undersampled, so the physics holds: the
    measurement is ``H`` of the augmented image. Geometric augmentation of the fully sampled
    images is what lets reconstruction networks learn from few slices (MRAugment, Fabian et al.,
    ICML 2021); off (both 0) by default.
    """
    draws = tf.random.stateless_uniform([2], tf.stack([seed, tf.constant(7, tf.int64)]), -1.0, 1.0)
    angle = draws[0] * (rotation * np.pi / 180.0)
    factor = 1.0 + draws[1] * zoom
    # output pixel p (col, row) <- input c + R(angle) (p - c) / factor
    a, b = tf.cos(angle) / factor, tf.sin(angle) / factor
    size = tf.shape(image)[-2:]
    cy, cx = tf.unstack((tf.cast(size, tf.float32) - 1.0) / 2.0)
    transform = tf.stack([a, -b, cx - a * cx + b * cy, b, a, cy - b * cx - a * cy, 0.0, 0.0])[None]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=complex_to_channels(image)[None], transforms=transform, output_shape=size,
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")[0]
    return channels_to_complex(out)


def unpaired_mri_dataset(
    clean: Sequence[FastMRIFile],
    measured: Sequence[FastMRIFile],
    crop_size: int,
    sampling: MaskSpec,
    batch_size: int = 1,
    seed: int = 0,
    shuffle_buffer: int = 256,
    cache: bool = False,
    flip: bool = False,
    reader: str = "h5py",
    rotation: float = 0.0,
    zoom: float = 0.0,
) -> tf.data.Dataset:
    """Infinite unpaired training batches ``{"x", "x_params", "y", "y_params"}``.

    * ``x``: clean images from ``clean`` files, ``(B, crop, crop, 2)``, divided by
      ``std(|H x|)`` under the mask ``x_params["mask"]`` drawn for it (used by the cycle ``G(Hx)``);
    * ``y``: measurements of the *other* files, ``(B, crop, crop, 2)``, divided by ``std(|y|)``, with
      their mask ``y_params["mask"]`` ``(B, crop)``: fully sampled files are undersampled
      retrospectively; files that hold their own acquisition (a ``mask`` dataset, as fastMRI's
      challenge files) give ``H_m`` of their zero-filled crop under their own mask on the crop
      (:func:`acquired_dataset`), drawn in proportion to their slices.

    Masks are drawn per sample from ``sampling`` (fastMRI's algorithms, seeds from a ``seed``-ed stream);
    with ``flip`` each image is also flipped up-down / left-right at random (:func:`augment`), and
    with ``rotation`` (degrees) or ``zoom`` rotated and zoomed at random (:func:`affine_augment`),
    before it is undersampled (acquisitions are only flipped, their masks with them);
    slices are shuffled with a buffer, mapped in parallel and prefetched. ``cache`` keeps
    the cropped images in memory after the first pass (``crop^2 * 8`` bytes a slice).
    ``reader`` reads the HDF5 files (:func:`image_dataset`).
    """

    def params(key):
        return lambda d: {key: d[key], f"{key}_params": {"mask": d["mask"]}}

    images = _slice_pairs(clean, crop_size, sampling, seed, shuffle_buffer, cache, flip, reader, rotation, zoom,
                          what="--clean_files (clean images)")
    measurements = _measurement_slices(measured, crop_size, sampling, seed + 1, shuffle_buffer, cache, flip, reader,
                                       rotation, zoom)
    ds = tf.data.Dataset.zip(images.map(params("x")), measurements.map(params("y")))
    ds = ds.map(lambda a, b: {**a, **b})
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def paired_mri_dataset(
    infos: Sequence[FastMRIFile],
    crop_size: int,
    sampling: MaskSpec,
    batch_size: int = 1,
    seed: int = 0,
    shuffle_buffer: int = 256,
    cache: bool = False,
    flip: bool = False,
    reader: str = "h5py",
    rotation: float = 0.0,
    zoom: float = 0.0,
) -> tf.data.Dataset:
    """Infinite *matched* batches ``{"x", "y", "x_params", "y_params"}`` of the same slices, for
    the supervised baseline (same normalisation and masks as :func:`unpaired_mri_dataset`)."""
    ds = _slice_pairs(infos, crop_size, sampling, seed, shuffle_buffer, cache, flip, reader, rotation, zoom,
                      what="supervised learning (matched pairs)")
    ds = ds.map(lambda d: {"x": d["x"], "y": d["y"], "x_params": {"mask": d["mask"]}, "y_params": {"mask": d["mask"]}})
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def check_fully_sampled(infos: Sequence[FastMRIFile], what: str = "training") -> None:
    """Raise :class:`FastMRIFormatError` naming the first file that holds its own ``mask``.

    Clean images and supervised pairs come from fully sampled k-space; a file that is
    already undersampled (fastMRI challenge/test files) has no clean image. Such files are
    measurements (``--measured_files``) or for ``python -m tf_otcycle.reconstruct``.
    """
    for info in infos:
        if info.has_mask:
            raise FastMRIFormatError(
                f"{info.path}: holds an undersampled acquisition (a 'mask' dataset); {what} needs fully sampled "
                "k-space. Give such files as --measured_files, or reconstruct them with "
                "`python -m tf_otcycle.reconstruct`."
            )


def check_scorable(infos: Sequence[FastMRIFile], what: str = "evaluation") -> None:
    """Raise :class:`FastMRIFormatError` naming the first undersampled file without a target.

    A fully sampled file is scored against its ``reconstruction_*`` (or its own magnitude);
    a file with its own ``mask`` and no ``reconstruction_*`` has nothing to score against.
    """
    for info in infos:
        if info.has_mask and info.target_key is None:
            raise FastMRIFormatError(
                f"{info.path}: holds an undersampled acquisition (a 'mask' dataset) and no reconstruction_* target: "
                f"nothing to score against in {what}. Reconstruct it with `python -m tf_otcycle.reconstruct`."
            )


def _slice_pairs(infos, crop_size, sampling, seed, shuffle_buffer, cache, flip, reader="h5py", rotation=0.0,
                 zoom=0.0, what="training"):
    """Shuffled, repeated ``{"x", "y", "mask"}`` per slice: normalised image, its undersampling, mask."""
    check_fully_sampled(infos, what)

    def prepare(image, s):
        mask = _mask_from_seed(s, sampling, crop_size)
        if flip:
            image = augment(image, s)
        if rotation or zoom:
            image = affine_augment(image, s, rotation, zoom)
        x, y, _ = normalize_pair(image, mask)
        shape = [crop_size, crop_size, 2]
        return {"x": tf.ensure_shape(complex_to_channels(x), shape),
                "y": tf.ensure_shape(complex_to_channels(y), shape),
                "mask": mask}

    return _shuffled_map(image_dataset(infos, crop_size, reader), prepare, seed, shuffle_buffer, cache)


def _acquired_measurements(infos, crop_size, seed, shuffle_buffer, cache, flip, reader="h5py"):
    """Shuffled, repeated ``{"y", "mask"}`` per slice of acquisitions: ``H_m`` of the zero-filled
    crop under the file's mask on the crop, normalised as :func:`normalize_pair` does."""

    def prepare(pair, s):
        image, mask = pair
        if flip:
            image, mask = augment_acquired(image, mask, s)
        _, y, _ = normalize_pair(image, mask)
        return {"y": tf.ensure_shape(complex_to_channels(y), [crop_size, crop_size, 2]),
                "mask": tf.ensure_shape(mask, [crop_size])}

    return _shuffled_map(acquired_dataset(infos, crop_size, reader), prepare, seed, shuffle_buffer, cache)


def _shuffled_map(ds: tf.data.Dataset, prepare, seed: int, shuffle_buffer: int, cache: bool) -> tf.data.Dataset:
    """``ds`` (kept in memory after the first pass with ``cache``) shuffled and repeated, each
    element mapped in parallel by ``prepare(element, s)`` with its own int64 ``s`` from a
    ``seed``-ed stream (the masks' and augmentations' draws)."""
    if cache:
        ds = ds.cache()
    ds = ds.shuffle(shuffle_buffer, seed=seed).repeat()
    seeds = tf.data.Dataset.random(seed=seed + 1000)
    return tf.data.Dataset.zip(ds, seeds).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)


def _measurement_slices(infos, crop_size, sampling, seed, shuffle_buffer, cache, flip, reader="h5py", rotation=0.0,
                        zoom=0.0):
    """The measurement domain ``{"y", "mask"}``: fully sampled files undersampled retrospectively,
    acquisitions as they were acquired, the two drawn in proportion to their slices."""
    full = [i for i in infos if not i.has_mask]
    acquired = [i for i in infos if i.has_mask]
    parts, slices = [], []
    if full:
        retrospective = _slice_pairs(full, crop_size, sampling, seed, shuffle_buffer, cache, flip, reader, rotation,
                                     zoom)
        parts.append(retrospective.map(lambda d: {"y": d["y"], "mask": d["mask"]}))
        slices.append(sum(i.num_slices for i in full))
    if acquired:
        parts.append(_acquired_measurements(acquired, crop_size, seed + 2, shuffle_buffer, cache, flip, reader))
        slices.append(sum(i.num_slices for i in acquired))
    if len(parts) == 1:
        return parts[0]
    return tf.data.Dataset.sample_from_datasets(parts, weights=[n / sum(slices) for n in slices], seed=seed + 3)


def inspect_files(paths: Iterable[str], crop_size: int) -> list[FastMRIFile]:
    """:func:`inspect_file` on each path."""
    return [inspect_file(p, crop_size) for p in paths]
