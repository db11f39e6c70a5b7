"""Evaluation: run methods on test volumes and report fastMRI-style metrics, tables, panels."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_otcycle import metrics
from tf_otcycle.data import fastmri
from tf_otcycle.io_utils import atomic_write_bytes, atomic_write_text
from tf_otcycle.physics.fft import channels_to_complex, complex_to_channels, data_consistency, fft2c

# A method maps normalised undersampled images (B, H, W, 2) and masks (B, W) to
# normalised reconstructions (B, H, W, 2).
Method = Callable[[np.ndarray, np.ndarray], np.ndarray]


def zero_filled(y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The input itself: the zero-filled inverse FFT."""
    return y


def generator_method(generator, batch_size: int = 8) -> Method:
    """Wrap a Keras generator ``(B, H, W, 2) -> (B, H, W, 2)`` as a :data:`Method`."""

    def run(y: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = [np.asarray(generator(y[i : i + batch_size], training=False)) for i in range(0, len(y), batch_size)]
        return np.concatenate(out)

    return run


def with_data_consistency(method: Method) -> Method:
    """``method`` followed by data consistency: the measured k-space lines of the input put back."""

    def run(y: np.ndarray, mask: np.ndarray) -> np.ndarray:
        y_c = channels_to_complex(tf.constant(y))
        out = channels_to_complex(tf.constant(method(y, mask)))
        return complex_to_channels(data_consistency(out, fft2c(y_c), tf.constant(mask))).numpy()

    return run


def prepare_volume(
    info: fastmri.FastMRIFile, crop_size: int, mask_type: str, acceleration: float, center_fraction: float
) -> dict[str, np.ndarray]:
    """Undersample a test volume with its per-file mask; normalise each slice.

    A file that holds its own undersampled acquisition (a ``mask`` dataset) is not
    undersampled again: its zero-filled crop is the measurement (mask of ones on the crop,
    as ``reconstruct`` does, so ``+dc`` changes nothing), scored against its
    ``reconstruction_*`` target, and refused without one (nothing to score against).

    Returns:
        dict with ``y`` ``(S, crop, crop, 2)`` normalised input, ``mask`` ``(S, crop)``,
        ``scale`` ``(S,)`` (multiply to get back to file units) and ``target``
        ``(S, crop, crop)`` (the file's reconstruction, or ``|x|`` when absent).
    """
    images, target = fastmri.read_volume(info, crop_size)
    if info.has_mask:
        fastmri.check_scorable([info])
        mask = np.ones((crop_size,), np.float32)
    else:
        mask = fastmri.eval_mask(info, mask_type, crop_size, acceleration, center_fraction)
    _, y, scale = fastmri.normalize_pair(tf.constant(images), mask)  # per slice, as in training
    if target is None:
        target = np.abs(images).astype(np.float32)
    return {
        "y": complex_to_channels(y).numpy(),
        "mask": np.repeat(mask[None], len(images), axis=0),
        "scale": scale.numpy(),
        "target": target,
    }


def evaluate_mri(
    methods: Mapping[str, Method],
    infos: Sequence[fastmri.FastMRIFile],
    crop_size: int,
    mask_type: str,
    acceleration: float,
    center_fraction: float,
    panel_dir: str | os.PathLike | None = None,
    num_panels: int = 2,
) -> tuple[list[dict], list[dict]]:
    """Metrics per volume and their means per method (fastMRI ``evaluate.py`` conventions).

    Each method sees the same normalised inputs and masks; its output is scaled back to file
    units, its magnitude compared with the target: PSNR over the volume with the volume's
    max as data range, SSIM per slice with the same data range, NMSE.

    Returns:
        ``(summary_rows, per_volume_rows)``; summary rows have ``method, psnr, ssim, nmse,
        volumes, seconds_per_slice``.
    """
    per_volume: list[dict] = []
    times: dict[str, list[float]] = {name: [] for name in methods}
    panels_written = 0
    for info in infos:
        vol = prepare_volume(info, crop_size, mask_type, acceleration, center_fraction)
        recons = {}
        for name, method in methods.items():
            t0 = tf.timestamp()
            out = method(vol["y"], vol["mask"])
            times[name].append(float(tf.timestamp() - t0) / len(vol["y"]))
            if out.shape != vol["y"].shape:
                raise ValueError(f"method {name!r}: output shape {out.shape}, expected {vol['y'].shape}")
            mag = np.abs(channels_to_complex(out).numpy()) * vol["scale"][:, None, None]
            recons[name] = mag
            gt = vol["target"]
            per_volume.append({
                "method": name, "file": Path(info.path).name,
                "psnr": metrics.psnr(gt, mag), "ssim": metrics.ssim(gt, mag), "nmse": metrics.nmse(gt, mag),
            })
        if panel_dir is not None and panels_written < num_panels:
            s = len(vol["y"]) // 2
            write_panel(
                Path(panel_dir) / f"{Path(info.path).stem}_slice{s:03d}.png",
                [recons[n][s] for n in methods] + [vol["target"][s]],
                error_against=vol["target"][s],
            )
            panels_written += 1
    summary = []
    for name in methods:
        rows = [r for r in per_volume if r["method"] == name]
        summary.append({
            "method": name,
            "psnr": float(np.mean([r["psnr"] for r in rows])),
            "ssim": float(np.mean([r["ssim"] for r in rows])),
            "nmse": float(np.mean([r["nmse"] for r in rows])),
            "volumes": len(rows),
            "seconds_per_slice": float(np.mean(times[name])),
        })
    return summary, per_volume


def write_tables(rows: Sequence[dict], out_dir: str | os.PathLike, columns: Sequence[str], name: str = "metrics") -> str:
    """Write ``<name>.csv`` and ``<name>.md`` (atomically); return the Markdown table."""
    out_dir = Path(out_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _fmt(r.get(k)) for k in columns})
    atomic_write_text(out_dir / f"{name}.csv", buf.getvalue())
    md = "| " + " | ".join(columns) + " |\n|" + "|".join("---" for _ in columns) + "|\n"
    for r in rows:
        md += "| " + " | ".join(_fmt(r.get(k)) for k in columns) + " |\n"
    atomic_write_text(out_dir / f"{name}.md", md)
    return md


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    return "" if v is None else str(v)


def write_panel(path: str | os.PathLike, images: Sequence[np.ndarray], error_against: np.ndarray | None = None) -> None:
    """Save images side by side as an 8-bit PNG, all on the scale of the last one.

    With ``error_against``, a second row shows ``|image - reference|`` (x5) under each image.
    """
    ref_max = float(np.max(images[-1])) or 1.0
    row = np.concatenate([np.clip(im / ref_max, 0, 1) for im in images], axis=1)
    if error_against is not None:
        err = np.concatenate([np.clip(5 * np.abs(im - error_against) / ref_max, 0, 1) for im in images], axis=1)
        row = np.concatenate([row, err], axis=0)
    png = tf.io.encode_png((row[..., None] * 255).round().astype(np.uint8)).numpy()
    atomic_write_bytes(path, png)


# --- microscopy -----------------------------------------------------------------------------


def volume_views(volume: np.ndarray) -> np.ndarray:
    """Maximum-intensity XY view with the YZ and XZ views beside and below it, one 2-D image.

    Layout (``(D, H, W)`` in): ``[[XY (H, W), YZ (H, D)], [XZ (D, W), 0]]``.
    """
    xy = volume.max(axis=0)
    yz = volume.max(axis=2).T  # (H, D)
    xz = volume.max(axis=1)  # (D, W)
    d = volume.shape[0]
    top = np.concatenate([xy, yz], axis=1)
    bottom = np.concatenate([xz, np.zeros((d, d), volume.dtype)], axis=1)
    return np.concatenate([top, bottom], axis=0)


def write_volume_panel(path: str | os.PathLike, volumes: Sequence[np.ndarray], error_against: np.ndarray | None = None) -> None:
    """PNG of :func:`volume_views` of each volume side by side (each scaled to its own max);
    with ``error_against`` a second row shows the views of ``|volume - reference|``."""
    views = [volume_views(v) for v in volumes]
    row = np.concatenate([np.clip(v / (v.max() or 1.0), 0, 1) for v in views], axis=1)
    if error_against is not None:
        errs = [volume_views(np.abs(v - error_against)) for v in volumes]
        row = np.concatenate([row, np.concatenate([np.clip(e, 0, 1) for e in errs], axis=1)], axis=0)
    atomic_write_bytes(path, tf.io.encode_png((row[..., None] * 255).round().astype(np.uint8)).numpy())


def evaluate_microscopy(
    methods: Mapping[str, Callable[[np.ndarray], np.ndarray]],
    test_files: Sequence[str],
    panel_dir: str | os.PathLike | None = None,
    num_panels: int = 2,
) -> tuple[list[dict], list[dict]]:
    """PSNR / SSIM of each method on each ``NAME_blurred.tif`` against ``NAME_gt.tif``.

    Both are normalised to [0, 1] (min-max, as in training); PSNR over the volume with data
    range 1, SSIM per XY slice (data range 1), averaged. A method maps a normalised blurred
    volume ``(D, H, W)`` to a reconstruction of the same shape.

    Returns:
        ``(per_file_rows, summary_rows)``: rows of ``method, file, psnr, ssim`` and the
        means per method and test folder (``method, file=<folder>/*, psnr, ssim``).
    """
    from tf_otcycle.data import tiff

    rows: list[dict] = []
    panels = 0
    for path in test_files:
        blurred = tiff.normalize(tiff.read_stack(path))
        gt_path = tiff.gt_path_for(path)
        if not gt_path.exists():
            raise tiff.TiffFormatError(f"{path}: no ground truth {gt_path.name} beside it")
        gt = tiff.normalize(tiff.read_stack(gt_path))
        if gt.shape != blurred.shape:
            raise tiff.TiffFormatError(f"{gt_path}: shape {gt.shape} differs from {path} {blurred.shape}")
        outputs = {}
        for name, method in methods.items():
            t0 = tf.timestamp()
            out = np.asarray(method(blurred), np.float32)
            seconds = float(tf.timestamp() - t0)
            outputs[name] = out
            rows.append({
                "method": name, "file": f"{Path(path).parent.name}/{Path(path).name}",
                "psnr": metrics.psnr(gt, out, data_range=1.0), "ssim": metrics.ssim(gt, out, data_range=1.0),
                "nmse": metrics.nmse(gt, out), "seconds": seconds,
            })
        if panel_dir is not None and panels < num_panels:
            write_volume_panel(Path(panel_dir) / f"{Path(path).parent.name}_{Path(path).stem}.png",
                               [*outputs.values(), gt], error_against=gt)
            panels += 1
    summary = []
    for folder in sorted({r["file"].split("/")[0] for r in rows}):
        for name in methods:
            sel = [r for r in rows if r["method"] == name and r["file"].startswith(folder + "/")]
            summary.append({"method": name, "file": f"{folder}/*", "psnr": float(np.mean([r["psnr"] for r in sel])),
                            "ssim": float(np.mean([r["ssim"] for r in sel])), "volumes": len(sel)})
    return rows, summary


def psf_similarity(learned: np.ndarray, reference: np.ndarray, voxel_size: Sequence[float]) -> dict:
    """Normalised cross-correlation (centred, same size) and FWHM per axis of two PSFs."""
    from tf_otcycle.physics.psf import fwhm

    a, b = _center_to(learned, reference.shape), reference
    a0, b0 = a - a.mean(), b - b.mean()
    ncc = float(np.sum(a0 * b0) / (np.linalg.norm(a0) * np.linalg.norm(b0) + 1e-20))
    fl, fr = fwhm(a, voxel_size), fwhm(b, voxel_size)
    return {"ncc": ncc, **{f"fwhm_{ax}_learned": v for ax, v in zip("zyx", fl)}, **{f"fwhm_{ax}_true": v for ax, v in zip("zyx", fr)}}


def _center_to(psf: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Crop or zero-pad ``psf`` around its ``shape // 2`` centre to ``shape``."""
    out = np.zeros(shape, np.float64)
    src_c = [n // 2 for n in psf.shape]
    dst_c = [n // 2 for n in shape]
    src, dst = [], []
    for sn, dn, sc, dc in zip(psf.shape, shape, src_c, dst_c):
        lo = min(sc, dc)
        hi = min(sn - sc, dn - dc)
        src.append(slice(sc - lo, sc + hi))
        dst.append(slice(dc - lo, dc + hi))
    out[tuple(dst)] = psf[tuple(src)]
    return out


def psf_panel(path: str | os.PathLike, psfs: Sequence[np.ndarray]) -> None:
    """PNG of the central XY / XZ / YZ sections of each PSF (rows), each scaled to its max."""
    rows = []
    for p in psfs:
        c = [n // 2 for n in p.shape]
        xy, xz, yz = p[c[0]], p[:, c[1], :], p[:, :, c[2]]
        h = max(xy.shape[0], xz.shape[0], yz.shape[0])
        parts = [np.pad(s, ((0, h - s.shape[0]), (0, 1))) for s in (xy, xz, yz)]
        row = np.concatenate(parts, axis=1)
        rows.append(row / (row.max() or 1.0))
    width = max(r.shape[1] for r in rows)
    img = np.concatenate([np.pad(r, ((0, 1), (0, width - r.shape[1]))) for r in rows], axis=0)
    img = np.kron(img, np.ones((4, 4)))  # enlarge small kernels for viewing
    atomic_write_bytes(path, tf.io.encode_png((np.clip(img, 0, 1)[..., None] * 255).round().astype(np.uint8)).numpy())
