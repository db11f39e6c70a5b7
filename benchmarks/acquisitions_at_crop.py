"""Acquisitions as wide as the crop: fully sampled fastMRI files rewritten as undersampled
acquisitions whose k-space has ``--crop_size`` columns, so that a file's mask is exact on the crop.

    .venv/bin/python benchmarks/acquisitions_at_crop.py --src data/quality/mri --out data/quality/mri_acq128

Each ``SRC/measured/*.h5`` (single-coil, fully sampled) becomes ``OUT/measured/<same name>``:
its image cut to the centre ``crop_size`` columns, back to k-space, times one mask drawn at
``crop_size`` columns with fastMRI's file-name seed, in the challenge layout
(:func:`tf_otcycle.data.synthetic.write_kspace_file` with ``mask``). ``OUT/clean``, ``val`` and
``test`` link to ``SRC``'s. ``python -m tf_otcycle.data.synthetic mri --acquired`` writes the
same subjects at their full width (144 columns at ``--size 128``), where the mask on the crop
is the nearest-frequency approximation (:func:`tf_otcycle.physics.masks.crop_mask`); training
on both sets measures what that approximation costs (``QUALITY.md``, Notes, sixteenth session).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import h5py
import numpy as np

from tf_otcycle.data import fastmri
from tf_otcycle.data.synthetic import write_kspace_file
from tf_otcycle.physics.fft import fft2c, ifft2c
from tf_otcycle.physics.masks import MaskSpec, file_seed

SCANNER_UNITS = 1e-4  # write_kspace_file scales k-space by this; the source files are already scaled


def centre_columns(kspace: np.ndarray, width: int) -> np.ndarray:
    """K-space ``(..., H, width)`` of the image of ``kspace`` ``(..., H, W)`` cut to its centre ``width`` columns."""
    image = np.asarray(ifft2c(kspace))
    left = (image.shape[-1] - width) // 2
    return np.asarray(fft2c(image[..., left:left + width]))


def rewrite(src: Path, out: Path, crop_size: int, sampling: MaskSpec) -> None:
    """``src`` (fully sampled, single-coil) as an acquisition ``crop_size`` columns wide, at ``out``."""
    info = fastmri.inspect_file(src, crop_size)  # a fastMRI file at least crop_size wide and high
    fastmri.check_fully_sampled([info], "rewriting it as an acquisition")
    if info.multicoil:
        raise fastmri.FastMRIFormatError(f"{src}: multi-coil; expected a single-coil file")
    with h5py.File(src, "r") as f:
        kspace = f["kspace"][()]
    narrow = centre_columns(kspace, crop_size) / SCANNER_UNITS
    patient = str(info.attrs.get("patient_id", src.stem))
    write_kspace_file(out, narrow, crop_size, 0.0, np.random.RandomState(0), patient,
                      mask=sampling(crop_size, seed=file_seed(src.name)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", default="data/quality/mri", help="a set with clean/, measured/, val/, test/")
    parser.add_argument("--out", required=True)
    parser.add_argument("--crop_size", type=int, default=128)
    parser.add_argument("--acceleration", type=int, default=4)
    parser.add_argument("--center_fraction", type=float, default=0.04)
    parser.add_argument("--mask_type", default="random", choices=["random", "equispaced"])
    args = parser.parse_args(argv)
    src, out = Path(args.src), Path(args.out)
    (out / "measured").mkdir(parents=True, exist_ok=True)
    for split in ("clean", "val", "test"):
        if not (out / split).exists():
            os.symlink((src / split).resolve(), out / split)
    sampling = MaskSpec(args.mask_type, args.acceleration, args.center_fraction)
    files = sorted((src / "measured").glob("*.h5"))
    for path in files:
        rewrite(path, out / "measured" / path.name, args.crop_size, sampling)
    print(f"wrote {len(files)} acquisitions {args.crop_size} columns wide to {out / 'measured'}")


if __name__ == "__main__":
    main()
