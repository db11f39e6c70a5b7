"""Ablation of the OT-cycleGAN objective (issue #9): what makes the method leave the identity,
keeps its critics 1-Lipschitz, and reconstructs.

    .venv/bin/python benchmarks/ablation.py --application=mri          # runs every variant
    .venv/bin/python benchmarks/ablation.py --application=mri --variants=A,B
    .venv/bin/python benchmarks/ablation.py --application=mri --collect # table from existing runs
    .venv/bin/python benchmarks/ablation.py --smoke --run_root=/tmp/a     # tiny: checks it runs (make test)

Each variant is ``train/<application>.py`` with the benchmark's data and budget
(``ABLATION_<APP>`` below: 10 epochs x 100 generator steps, demo-size networks) plus the
variant's flags; all runs share the seed, data and test files. Writes
``benchmarks/ABLATION_<app>.md``: test PSNR/SSIM of the OT-cycleGAN against the input, the
last epoch's training diagnostics (cycle terms, Wasserstein estimate in RMS units, gradient
penalty) and the best validation PSNR. Not a test: each variant trains for minutes.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "mri": ["train/mri.py", "--flagfile=train/configs/mri_demo.flags", "--clean_files={data}/clean/*.h5",
            "--measured_files={data}/measured/*.h5", "--val_files={data}/val/*.h5", "--test_files={data}/test/*.h5",
            "--crop_size=128", "--depth=4", "--epochs=10", "--steps_per_epoch=100", "--export=false", "--num_panels=1",
            "--ema_momentum=0"],
    "microscopy": ["train/microscopy.py", "--flagfile=train/configs/microscopy_demo.flags",
                   "--blurred_files={data}/train/blurred/*_blurred.tif", "--sharp_files={data}/train/sharp/*.tif",
                   "--val_files={data}/val/*_blurred.tif", "--test_files={data}/test_500nm/*_blurred.tif",
                   "--true_psf={data}/psf_500nm.tif", "--epochs=10", "--steps_per_epoch=100", "--decay_epoch=5",
                   "--export=false", "--num_panels=1", "--ema_momentum=0", "--cycle_gradients=joint"],
}
# The tables were measured before the weight average (--ema_momentum, default 0.99 since) and,
# for microscopy, before split cycle gradients (--cycle_gradients, microscopy default split
# since): the base pins both to their old values, so every row stays what it was; QUALITY.md
# measures the average and the split gradients themselves.
# name: (flags, what it tests). Flags not given take the flagfile's values.
VARIANTS = {
    "mri": {
        "A": (["--gan_weight=0", "--cycle_warmup_steps=0", "--gan_warmup_steps=0"], "both cycle terms, no critic"),
        "B": (["--gan_weight=0", "--sigma=0", "--cycle_warmup_steps=0", "--gan_warmup_steps=0"], "image cycle alone"),
        "F": (["--gan_weight=0", "--cycle_warmup_steps=500", "--gan_warmup_steps=0"],
              "A + sigma ramped over 500 steps"),
        "G": (["--gan_weight=1", "--cycle_warmup_steps=0", "--gan_warmup_steps=0"],
              "critic on (RMS units), no warm-up"),
        "H": (["--gan_weight=1", "--cycle_warmup_steps=500", "--gan_warmup_steps=500"],
              "G + both ramps over 500 steps"),
        "I": (["--gan_weight=1", "--cycle_warmup_steps=500", "--gan_warmup_steps=0"], "G + sigma ramp only"),
        "P": (["--gan_weight=1", "--sigma=0", "--cycle_warmup_steps=0", "--gan_warmup_steps=500"],
              "image cycle + critic (no measurement cycle)"),
        "Q": (["--gan_weight=1", "--sigma=0.1", "--cycle_warmup_steps=500", "--gan_warmup_steps=500"],
              "H with sigma 0.1"),
        "R": (["--gan_weight=0.1", "--cycle_warmup_steps=500", "--gan_warmup_steps=500"], "H with gan_weight 0.1"),
        "K": (["--gan_weight=1", "--cycle_warmup_steps=500", "--gan_warmup_steps=500", "--critic_norm=layer"],
              "H with layer norm in the critic"),
        "L": (["--gan_weight=181", "--gp_weight=5", "--critic_norm=instance", "--cycle_warmup_steps=0",
               "--gan_warmup_steps=0"], "the authors' scale for G: adversarial x sqrt(N), GP 5, instance norm"),
    },
    "microscopy": {  # rows before the noise model: --measurement_noise=none (then the only behaviour)
        "M1": (["--gan_weight=1", "--cycle_warmup_steps=0", "--gan_warmup_steps=0", "--measurement_noise=none"],
               "critics on, no warm-up"),
        "M2": (["--gan_weight=1", "--cycle_warmup_steps=300", "--gan_warmup_steps=300", "--measurement_noise=none"],
               "M1 + both ramps"),
        "M3": (["--gan_weight=0", "--cycle_warmup_steps=0", "--gan_warmup_steps=0", "--measurement_noise=none"],
               "cycle terms only"),
        "M2N": (["--gan_weight=1", "--cycle_warmup_steps=300", "--gan_warmup_steps=300", "--measurement_noise=auto"],
                "M2 + measurement noise on Hx, estimated from the blurred files"),
        "PSF_gauss": (["--epochs=15", "--decay_epoch=8", "--cycle_warmup_steps=500", "--gan_warmup_steps=500",
                       "--psf_init=gaussian", "--measurement_noise=none"], "blind: Gaussian initial PSF, 1500 steps"),
        "PSF_gauss_lr": (["--epochs=15", "--decay_epoch=8", "--cycle_warmup_steps=500", "--gan_warmup_steps=500",
                          "--psf_init=gaussian", "--psf_learning_rate=1e-2", "--measurement_noise=none"],
                         "blind, PSF learning rate 1e-2"),
        "PSF_flat": (["--epochs=15", "--decay_epoch=8", "--cycle_warmup_steps=500", "--gan_warmup_steps=500",
                      "--psf_init=flat", "--measurement_noise=none"], "blind: flat initial PSF, 1500 steps"),
        "PSF_gauss_N": (["--epochs=15", "--decay_epoch=8", "--cycle_warmup_steps=500", "--gan_warmup_steps=500",
                         "--psf_init=gaussian", "--psf_learning_rate=1e-2", "--measurement_noise=auto"],
                        "PSF_gauss_lr + measurement noise on Hx"),
    },
}
DIAGNOSTICS = ("cycle_x", "cycle_y", "wasserstein", "gp")
# --smoke: one variant on tiny data and networks, 1 epoch x 2 steps, everything under --run_root
SMOKE = {"mri": ("A", ["--size", "32", "--slices", "2", "--num_clean", "2", "--num_measured", "2", "--num_val", "1",
                       "--num_test", "1"], ["--crop_size=32", "--depth=2", "--val_slices=1"]),
         "microscopy": ("M3", ["--shape", "16,32,32", "--num_blurred", "2", "--num_sharp", "2", "--num_test", "1",
                               "--test_wavelengths", "500"], ["--patch_size=16", "--depth=1", "--psf_size=5"])}
SMOKE_FLAGS = ["--epochs=1", "--steps_per_epoch=2", "--decay_epoch=1", "--base_filters=2", "--critic_filters=2",
               "--critic_layers=1", "--num_panels=0"]


def run_variant(app: str, name: str, flags: list[str], data: str, run_root: Path, extra: tuple = ()) -> None:
    run_dir = run_root / name
    command = [sys.executable, *[a.format(data=data) for a in BASE[app]], f"--run_dir={run_dir}", *flags, *extra]
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run: the entry point would resume an old one
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "stdout.log", "w") as log:
        subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def test_metrics(run_dir: Path) -> dict[str, dict]:
    """Method -> row of ``eval/metrics.csv`` (means over the test files, every task)."""
    with open(run_dir / "eval" / "metrics.csv") as f:
        return {r["method"]: r for r in csv.DictReader(f)}


def epoch_logs(log_text: str) -> list[dict[str, float]]:
    """The ``name: value`` pairs of each Keras epoch line."""
    out = []
    for line in re.findall(r"^\d+/\d+ - .*$", log_text, flags=re.M):
        out.append({k: float(v) for k, v in re.findall(r"(\w+): ([-+\d.e]+)", line)})
    return out


def row(app: str, name: str, flags: list[str], what: str, run_dir: Path) -> str:
    metrics = test_metrics(run_dir)
    epochs = epoch_logs((run_dir / "stdout.log").read_text())
    last = epochs[-1] if epochs else {}
    best_val = max((e["val_psnr"] for e in epochs if "val_psnr" in e), default=float("nan"))
    ot, inp = metrics["ot_cyclegan"], metrics["input"]
    diag = " | ".join(f"{last[k]:.3g}" if k in last else "" for k in DIAGNOSTICS)
    psf = ""
    sim = run_dir / "psf" / "similarity.json"
    if sim.exists():
        s = json.loads(sim.read_text())
        psf = (f"; PSF NCC {s['ncc']:.3f} (initial {s['ncc_initial']:.3f}), FWHM z/y/x "
               f"{s['fwhm_z_learned']:.2f}/{s['fwhm_y_learned']:.2f}/{s['fwhm_x_learned']:.2f} µm "
               f"(true {s['fwhm_z_true']:.2f}/{s['fwhm_y_true']:.2f}/{s['fwhm_x_true']:.2f})")
    return (f"| {name} | {what}{psf} | `{' '.join(flags)}` | {float(inp['psnr']):.2f} | {float(ot['psnr']):.2f} | "
            f"{float(ot['ssim']):.3f} | {best_val:.2f} | {diag} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--application", choices=sorted(VARIANTS), default="mri")
    parser.add_argument("--variants", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--data", default="",
                        help="data folder (default: data/quality/<application>, written if missing)")
    parser.add_argument("--run_root", default="", help="default: runs/ablation/<application>")
    parser.add_argument("--collect", action="store_true", help="only build the table from existing runs")
    parser.add_argument("--smoke", action="store_true",
                        help="one variant, tiny data and networks, 1 epoch x 2 steps; writes only under --run_root")
    args = parser.parse_args(argv)
    app = args.application
    run_root = Path(args.run_root or ROOT / "runs" / "ablation" / app)
    data = Path(args.data or (run_root / "data" if args.smoke else ROOT / "data" / "quality" / app))
    names = [v for v in args.variants.split(",") if v] or list(VARIANTS[app])
    data_args, extra = (["--size", "128"] if app == "mri" else []), ()
    if args.smoke:
        names, data_args, app_flags = [SMOKE[app][0]], SMOKE[app][1], SMOKE[app][2]
        extra = (*SMOKE_FLAGS, *app_flags)
    if not args.collect:
        if not data.exists():
            subprocess.run([sys.executable, "-m", "tf_otcycle.data.synthetic", app, "--out", str(data), *data_args],
                           cwd=ROOT, check=True)
        for name in names:
            print(f"variant {name}", flush=True)
            run_variant(app, name, VARIANTS[app][name][0], str(data), run_root, extra)
    header = ("| variant | what | flags | input PSNR | OT PSNR | OT SSIM | best val PSNR | "
              + " | ".join(DIAGNOSTICS) + " |\n|" + "---|" * (7 + len(DIAGNOSTICS)))
    rows = [row(app, n, *VARIANTS[app][n], run_root / n) for n in names if (run_root / n / "stdout.log").exists()]
    base = " ".join(a.format(data=data) for a in BASE[app])
    text = (f"# Ablation of the objective: {app}\n\n`python benchmarks/ablation.py --application={app}` on "
            f"{datetime.date.today().isoformat()}, {platform.machine()} {os.cpu_count()} cores, no GPU.\n\n"
            f"Every variant: `{base} --run_dir=... <flags>`; diagnostics are the last epoch's means.\n\n"
            + header + "\n" + "\n".join(rows) + "\n")
    out = run_root / f"ABLATION_{app}.md" if args.smoke else ROOT / "benchmarks" / f"ABLATION_{app}.md"
    if out.exists() and "\n## Notes" in out.read_text():  # hand-written reading of the table, kept
        text += "\n## Notes" + out.read_text().split("\n## Notes", 1)[1]
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
