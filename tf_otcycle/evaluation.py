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
from tf_otcycle.physics.fft import channels_to_complex, complex_to_channels

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


def prepare_volume(
    info: fastmri.FastMRIFile, crop_size: int, mask_type: str, acceleration: float, center_fraction: float
) -> dict[str, np.ndarray]:
    """Undersample a test volume with its per-file mask; normalise each slice.

    Returns:
        dict with ``y`` ``(S, crop, crop, 2)`` normalised input, ``mask`` ``(S, crop)``,
        ``scale`` ``(S,)`` (multiply to get back to file units) and ``target``
        ``(S, crop, crop)`` (the file's reconstruction, or ``|x|`` when absent).
    """
    images, target = fastmri.read_volume(info, crop_size)
    mask = fastmri.eval_mask(info, mask_type, crop_size, acceleration, center_fraction)
    y = fastmri.undersample(tf.constant(images), mask)  # (S, crop, crop) complex
    scale = tf.math.reduce_std(tf.abs(y), axis=[1, 2]) + 1e-12  # per slice, as in training
    y = y / tf.cast(scale[:, None, None], tf.complex64)
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
