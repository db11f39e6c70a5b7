"""Where an MRI reconstruction's error lies (issue #26): foreground or background, measured or
unmeasured k-space columns, magnitude or complex image; and what data consistency changes.

    .venv/bin/python benchmarks/error_split.py --run_dir=runs/quality/mri_sets/real_brain/seed0 \\
        --files='data/quality/mri_sets/real_brain/test/*.h5' [--methods=supervised,ot_cyclegan]

For each method it loads ``<run_dir>/<method>/generator.keras`` (what ``train/compare.py``
saves), reconstructs every slice of ``--files`` under the per-file test masks of the
benchmark, and prints the means over the files of: the PSNR of the magnitude (the benchmark's
score), the PSNR of the complex image, the PSNR inside the foreground (target above
``--foreground`` of the volume's maximum), the background's share of the squared magnitude
error, and the measured columns' share of the complex error's k-space energy. It adds the
rows ``input`` (zero-filled), ``METHOD+dc`` (the measured columns put back) and, with
``--pls_lambda``, the classical baseline ``pls_tv``. Run on the training files as well, it
tells a network that learned its slices from one that generalises.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np

COLUMNS = ("psnr", "psnr_complex", "psnr_foreground", "background_share", "measured_share")


def _db(peak: float, mse: float) -> float:
    return float(10.0 * np.log10(peak**2 / max(mse, 1e-30)))


def error_split(target: np.ndarray, truth: np.ndarray, out: np.ndarray, scale: np.ndarray, mask: np.ndarray,
                foreground: float = 0.05) -> dict[str, float]:
    """The error of one volume's reconstruction, split (see the module docstring).

    Args:
        target: ``(S, H, W)`` float magnitudes in file units (the benchmark's target).
        truth: ``(S, H, W)`` complex fully sampled images in the network's units.
        out: ``(S, H, W)`` complex reconstruction in the network's units.
        scale: ``(S,)`` per-slice factor from the network's units to the file's.
        mask: ``(W,)`` the measured columns (1) of centred k-space.
        foreground: fraction of ``target.max()`` above which a pixel is foreground.
    """
    from tf_otcycle.physics.fft import fft2c

    s = scale[:, None, None]
    peak = float(target.max())
    inside = target > foreground * peak
    e_mag = (np.abs(out) * s - target) ** 2
    e_complex = np.abs(out - truth) ** 2 * s**2
    energy = np.abs(fft2c((out - truth).astype(np.complex64)).numpy()) ** 2
    return {"psnr": _db(peak, e_mag.mean()), "psnr_complex": _db(peak, e_complex.mean()),
            "psnr_foreground": _db(peak, e_mag[inside].mean()),
            "background_share": float(e_mag[~inside].sum() / e_mag.sum()),
            "measured_share": float((energy * mask[None, None, :]).sum() / energy.sum())}


def reconstructions(generators: dict, y: np.ndarray, mask: np.ndarray, pls_lambda: float = 0.0,
                    pls_iterations: int = 100) -> dict[str, np.ndarray]:
    """``{"input", ["pls_tv",] METHOD, METHOD+dc}`` complex ``(S, H, W)`` outputs for zero-filled
    ``y`` ``(S, H, W)``; PLS-TV (the classical baseline) with ``pls_lambda`` when it is > 0."""
    import tensorflow as tf

    from tf_otcycle.classical import pls_tv
    from tf_otcycle.physics.fft import channels_to_complex, complex_to_channels, data_consistency, fft2c

    masks = tf.constant(np.repeat(mask[None], len(y), axis=0).astype(np.float32))
    outs = {"input": y}
    if pls_lambda > 0:
        outs["pls_tv"] = pls_tv(tf.constant(y), masks, pls_lambda, pls_iterations)[0].numpy()
    for name, generator in generators.items():
        out = channels_to_complex(generator(complex_to_channels(tf.constant(y)), training=False))
        outs[name] = out.numpy()
        outs[f"{name}+dc"] = data_consistency(out, fft2c(tf.constant(y)), masks).numpy()
    return outs


def split_files(paths: list[str], generators: dict, acceleration: float, center_fraction: float, crop_size: int,
                foreground: float = 0.05, pls_lambda: float = 0.0) -> dict[str, dict[str, float]]:
    """Method -> the :func:`error_split` numbers averaged over ``paths`` (fastMRI files)."""
    from tf_otcycle.data import fastmri
    from tf_otcycle.physics.masks import MaskSpec

    sampling = MaskSpec("random", acceleration, center_fraction)
    rows: dict[str, list[dict[str, float]]] = {}
    for path in paths:
        info = fastmri.inspect_file(path, crop_size)
        images, target = fastmri.read_volume(info, crop_size)
        if target is None:
            target = np.abs(images)
        mask = fastmri.eval_mask(info, sampling, crop_size)
        truth, y, scale = (t.numpy() for t in fastmri.normalize_pair(images, mask))
        for name, out in reconstructions(generators, y, mask, pls_lambda).items():
            rows.setdefault(name, []).append(error_split(target, truth, out, scale, mask, foreground))
    return {name: {c: float(np.mean([r[c] for r in values])) for c in COLUMNS} for name, values in rows.items()}


def table(means: dict[str, dict[str, float]]) -> str:
    """The means as a Markdown table."""
    lines = ["| row | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, m in means.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[c]:.2f}" for c in COLUMNS) + " |")
    return "\n".join(lines)


def _smoke(run_dir: Path) -> tuple[list[str], Path]:
    """Two tiny fastMRI files and an untrained tiny generator under ``run_dir``."""
    from tf_otcycle.data.synthetic import write_fastmri_file
    from tf_otcycle.export import export_keras
    from tf_otcycle.models import build_unet

    paths = []
    for i in range(2):
        paths.append(str(run_dir / "data" / f"file{i}.h5"))
        write_fastmri_file(paths[-1], i, size=16, slices=2)
    export_keras(build_unet(2, 2, depth=1, base_filters=2, residual=True, name="generator"),
                 run_dir / "supervised" / "generator.keras")
    return paths, run_dir


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_dir", required=True, help="a train/compare.py run directory")
    parser.add_argument("--files", default="", help="glob of fastMRI files (the test files, or the training files)")
    parser.add_argument("--methods", default="supervised,ot_cyclegan", help="comma-separated, saved under --run_dir")
    parser.add_argument("--acceleration", type=float, default=4.0)
    parser.add_argument("--center_fraction", type=float, default=0.04)
    parser.add_argument("--crop_size", type=int, default=128)
    parser.add_argument("--foreground", type=float, default=0.05, help="foreground: target above this x its max")
    parser.add_argument("--pls_lambda", type=float, default=0.0,
                        help="also the PLS-TV baseline with this TV weight (the one the benchmark chose); 0: not")
    parser.add_argument("--smoke", action="store_true", help="tiny files and an untrained generator under --run_dir")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    if args.smoke:
        paths, _ = _smoke(run_dir)
        args.methods, args.crop_size, args.pls_lambda = "supervised", 16, 0.02
    else:
        paths = sorted(glob.glob(args.files))
        if not paths:
            parser.error(f"--files: no file matches {args.files!r}")
    import keras

    import tf_otcycle  # noqa: F401  (registers the custom objects of the saved generators)

    generators = {}
    for name in args.methods.split(","):
        path = run_dir / name / "generator.keras"
        if not path.exists():
            parser.error(f"{path}: no saved generator (train it with train/compare.py --methods={name})")
        generators[name] = keras.saving.load_model(path, safe_mode=True)
    means = split_files(paths, generators, args.acceleration, args.center_fraction, args.crop_size, args.foreground,
                        args.pls_lambda)
    print(f"{len(paths)} file(s) {args.files or 'smoke'}, x{args.acceleration:g}, means over the files:")
    print(table(means))
    return means


if __name__ == "__main__":
    main()
