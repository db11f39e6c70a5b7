"""Quality benchmark: every method of ``train/compare.py``, one budget per application.

    .venv/bin/python benchmarks/quality.py                      # both applications, demo data
    .venv/bin/python benchmarks/quality.py --application=mri \\
        --flags=--clean_files='knee/clean/*.h5',--measured_files='knee/measured/*.h5',...

For each application it writes the synthetic demo data (unless ``--no-data``), runs
``train/compare.py`` with the benchmark's flagfile (``benchmarks/quality_<app>.flags``:
the same budget, epochs x steps, for every learned method) plus any ``--flags``, reads the
table it wrote and the OT-cycleGAN's validation PSNR per epoch (the curve), checks the
targets of the paper's comparison and writes ``benchmarks/QUALITY.md`` (or ``--out``) with
the tables, the budget, the command, the machine and the date. Not a test: it trains for
tens of minutes. Extra ``--flags`` point it at any fastMRI-format or TIFF data set.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

# Targets of issue #9 (the paper's margins on fastMRI, table 1).
TARGETS = (
    ("ot_cyclegan >= input + 1.36 dB", lambda m: m["ot_cyclegan"]["psnr"] >= m["input"]["psnr"] + 1.36),
    ("ot_cyclegan >= cyclegan + 1 dB", lambda m: m["ot_cyclegan"]["psnr"] >= m["cyclegan"]["psnr"] + 1.0),
    ("ot_cyclegan >= supervised - 0.3 dB", lambda m: m["ot_cyclegan"]["psnr"] >= m["supervised"]["psnr"] - 0.3),
    ("ot_cyclegan > classical", lambda m: m["ot_cyclegan"]["psnr"] > m[_classical(m)]["psnr"]),
    ("ot_cyclegan SSIM > input SSIM", lambda m: m["ot_cyclegan"]["ssim"] > m["input"]["ssim"]),
)
TRIVIAL = ("zeros", "mean")  # microscopy's trivial references, when present


def _classical(metrics: dict) -> str:
    return "pls_tv" if "pls_tv" in metrics else "richardson_lucy"


def make_data(application: str, data_dir: Path) -> None:
    args = {"mri": ["mri", "--out", str(data_dir / "mri"), "--size", "128"],
            "microscopy": ["microscopy", "--out", str(data_dir / "microscopy")]}[application]
    subprocess.run([PYTHON, "-m", "tf_otcycle.data.synthetic", *args], check=True, cwd=ROOT)


def run_compare(application: str, run_dir: Path, extra: list[str], log_path: Path) -> tuple[list[str], float]:
    command = [PYTHON, "train/compare.py", f"--flagfile=benchmarks/quality_{application}.flags",
               f"--run_dir={run_dir}", *extra]
    start = time.perf_counter()
    with open(log_path, "w") as log:
        subprocess.run(command, check=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return command, time.perf_counter() - start


def read_metrics(run_dir: Path) -> dict[str, dict[str, float]]:
    with open(run_dir / "eval" / "metrics.csv") as f:
        return {r["method"]: {k: _num(v) for k, v in r.items() if k != "method"} for r in csv.DictReader(f)}


def _num(v: str):
    try:
        return float(v)
    except ValueError:
        return v


def validation_curve(log_text: str, method: str = "ot_cyclegan") -> list[tuple[int, float, float]]:
    """``(epoch, val_psnr, val_psnr_input)`` of ``method``'s epoch lines in a compare log."""
    section = log_text.split(f"=== {method}:", 1)
    if len(section) < 2:
        return []
    body = section[1].split("\n=== ", 1)[0]
    curve = []
    for epoch, line in enumerate(re.findall(r"^\d+/\d+ - .*$", body, flags=re.M), start=1):
        psnr = re.search(r"val_psnr: ([-\d.e+]+)", line)
        psnr_in = re.search(r"val_psnr_input: ([-\d.e+]+)", line)
        if psnr:
            curve.append((epoch, float(psnr.group(1)), float(psnr_in.group(1)) if psnr_in else float("nan")))
    return curve


def budget(flagfile: Path) -> str:
    values = dict(re.findall(r"^--(\w+)=(.*)$", flagfile.read_text(), flags=re.M))
    return ", ".join(f"{k}={values[k]}" for k in ("epochs", "steps_per_epoch", "crop_size", "patch_size", "base_filters",
                                                   "depth", "learning_rate", "critic_learning_rate") if k in values)


def section(application: str, command: list[str], seconds: float, run_dir: Path, log_text: str) -> str:
    metrics = read_metrics(run_dir)
    table = (run_dir / "eval" / "metrics.md").read_text()
    lines = [f"## {application}", "", f"Command: `{' '.join(command[1:])}` ({seconds / 60:.1f} min in all)", "",
             f"Budget (every learned method): {budget(ROOT / 'benchmarks' / f'quality_{application}.flags')}", "", table]
    lines += ["Targets (issue #9):", ""]
    for label, check in TARGETS:
        try:
            lines.append(f"- {'met' if check(metrics) else 'NOT met'}: {label}")
        except KeyError as e:
            lines.append(f"- not checked ({e.args[0]} not run): {label}")
    for ref in TRIVIAL:
        if ref in metrics and "ot_cyclegan" in metrics:
            ok = metrics["ot_cyclegan"]["psnr"] > metrics[ref]["psnr"]
            lines.append(f"- {'met' if ok else 'NOT met'}: ot_cyclegan > {ref} (trivial reference)")
    selected = re.findall(r"^(\w+): (Evaluating .*?)(?:, kept in .*?\)|\.)?(?:, rather than .*)?$", log_text, flags=re.M)
    if selected:
        lines += ["", "Networks evaluated (`--select`, the same rule for every learned method):", ""]
        lines += [f"- {name}: {what})" if "(validation PSNR" in what else f"- {name}: {what}" for name, what in selected]
    curve = validation_curve(log_text)
    if curve:
        supervised = {e: p for e, p, _ in validation_curve(log_text, "supervised")}
        lines += ["", "Validation PSNR (dB) against generator steps (100 per epoch), the OT-cycleGAN's and "
                  "supervised learning's:", "", "| epoch | ot_cyclegan | supervised | input |", "|---|---|---|---|"]
        lines += [f"| {e} | {p:.2f} | {supervised[e]:.2f} | {q:.2f} |" if e in supervised else f"| {e} | {p:.2f} |  | {q:.2f} |"
                  for e, p, q in curve]
    return "\n".join(lines) + "\n"


def previous_sections(text: str) -> dict[str, str]:
    """The ``## mri`` / ``## microscopy`` sections of an earlier QUALITY.md (kept when one is rerun)."""
    body = text.split("\n## Notes", 1)[0]
    found = {}
    for app in ("mri", "microscopy"):
        m = re.search(rf"^## {app}\n.*?(?=^## |\Z)", body, flags=re.M | re.S)
        if m:
            found[app] = m.group(0).rstrip("\n") + "\n"
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--application", choices=["mri", "microscopy", "both"], default="both")
    parser.add_argument("--flags", default="", help="extra compare.py flags, comma-separated (e.g. data globs)")
    parser.add_argument("--data_dir", default=str(ROOT / "data" / "quality"), help="where the demo data is written")
    parser.add_argument("--no-data", dest="data", action="store_false", help="do not write the demo data")
    parser.add_argument("--run_dir", default=str(ROOT / "runs" / "quality"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "QUALITY.md"))
    args = parser.parse_args(argv)
    apps = ["mri", "microscopy"] if args.application == "both" else [args.application]
    extra = [f for f in args.flags.split(",") if f]
    out = Path(args.out)
    previous = out.read_text() if out.exists() else ""
    parts = []
    for app in apps:
        if args.data:
            make_data(app, Path(args.data_dir))
        run_dir = Path(args.run_dir) / app
        log_path = Path(args.run_dir) / f"{app}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        command, seconds = run_compare(app, run_dir, extra, log_path)
        parts.append(section(app, command, seconds, run_dir, log_path.read_text()))
        print(parts[-1], flush=True)
    kept = previous_sections(previous)
    by_app = {**kept, **dict(zip(apps, parts))}
    parts = [by_app[a] for a in ("mri", "microscopy") if a in by_app]
    header = (f"# Quality benchmark\n\n`python benchmarks/quality.py` on {datetime.date.today().isoformat()}, "
              f"{platform.machine()} {os.cpu_count()} cores, no GPU ({platform.platform()}).\n\n")
    text = header + "\n".join(parts)
    if "\n## Notes" in previous:  # hand-written reading of the tables, kept
        text += "\n## Notes" + previous.split("\n## Notes", 1)[1]
    out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
