"""One evaluation path for every task: a metric registry, one aggregation, one set of writers.

A task turns its test files into :class:`Sample` objects (the method inputs, the target and
how a method's output is compared with it); :func:`evaluate` runs every method on every
sample, scores it with each metric of :data:`METRICS` and aggregates the scores per method
(mean and standard deviation over files), per method and folder, and per file;
:func:`write_report` writes them as CSV and Markdown tables and an HTML report beside
labelled PNG figures (:mod:`tf_otcycle.figures`).

Conventions (fastMRI's ``evaluate.py``): PSNR over the whole array with the target's
maximum as data range, SSIM per 2-D slice (first axis) with the same range, NMSE; and the
PSNR after a least-squares affine intensity fit of the output to the target (deconvolution
benchmarks' convention, where a method's intensity scale is arbitrary).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from tf_otcycle import metrics
from tf_otcycle.figures import comparison_figure, write_html_report
from tf_otcycle.io_utils import atomic_write_bytes, atomic_write_text

# name -> f(target, prediction) -> float; add an entry to report another metric everywhere.
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "psnr": metrics.psnr,
    "ssim": metrics.ssim,
    "nmse": metrics.nmse,
    "psnr_affine": metrics.psnr_affine,  # after the least-squares intensity fit a * output + b
}


@dataclasses.dataclass
class Sample:
    """One test file as a task presents it.

    Attributes:
        name: the file name, ``group``: its folder (e.g. a test wavelength).
        inputs: positional arguments of every method (MRI: ``(y, mask)``; microscopy: ``(volume,)``).
        target: the reference, ``(S, H, W)`` slices or a ``(D, H, W)`` volume.
        to_target: maps a method's output to the target's space and units.
        panel: ``"slices"`` (middle slice side by side), ``"volume"`` (projections) or ``"image"``.
        units: slices (or volumes) in the sample, to report time per unit.
    """

    name: str
    group: str
    inputs: tuple
    target: np.ndarray
    to_target: Callable[[np.ndarray], np.ndarray] = np.asarray
    panel: str = "slices"
    units: int = 1


@dataclasses.dataclass
class Report:
    """Scores of :func:`evaluate`: ``per_file``, ``per_group`` and ``summary`` rows (dicts)."""

    per_file: list[dict]
    per_group: list[dict]
    summary: list[dict]
    metric_names: tuple[str, ...]


def evaluate(
    methods: Mapping[str, Callable],
    samples: Sequence[Sample] | Callable[[], Sequence[Sample]],
    panel_dir: str | os.PathLike | None = None,
    num_panels: int = 2,
    metric_names: Sequence[str] = tuple(METRICS),
) -> Report:
    """Run each method on each sample, score it, aggregate the scores.

    ``summary`` rows: ``method``, each metric's mean and ``<metric>_std`` over files,
    ``files``, ``seconds_per_unit``; ``per_group`` the same per method and folder.
    """
    unknown = set(metric_names) - set(METRICS)
    if unknown:
        raise ValueError(f"metric_names: unknown {sorted(unknown)}; registered: {sorted(METRICS)}")
    per_file: list[dict] = []
    panels = 0
    for sample in samples() if callable(samples) else samples:
        outputs, scores = {}, {}
        for name, method in methods.items():
            start = time.perf_counter()
            out = np.asarray(sample.to_target(np.asarray(method(*sample.inputs))), np.float32)
            seconds = time.perf_counter() - start
            if out.shape != sample.target.shape:
                raise ValueError(f"method {name!r}: output shape {out.shape} on {sample.name}, expected "
                                 f"{sample.target.shape}")
            outputs[name] = out
            row = {"method": name, "group": sample.group, "file": sample.name,
                   "seconds_per_unit": seconds / max(1, sample.units)}
            row.update({m: METRICS[m](sample.target, out) for m in metric_names})
            scores[name] = {m: row[m] for m in metric_names}
            per_file.append(row)
        if panel_dir is not None and panels < num_panels:
            _write_sample_panel(Path(panel_dir), sample, outputs, scores)
            panels += 1
    names = tuple(metric_names)
    return Report(per_file, _aggregate(per_file, ("method", "group"), names), _aggregate(per_file, ("method",), names),
                  names)


def _aggregate(rows: Sequence[dict], keys: Sequence[str], metric_names: Sequence[str]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, members in groups.items():
        row = dict(zip(keys, key))
        for m in metric_names:
            values = np.array([r[m] for r in members], np.float64)
            row[m], row[f"{m}_std"] = float(values.mean()), float(values.std())
        row["files"] = len(members)
        row["seconds_per_unit"] = float(np.mean([r["seconds_per_unit"] for r in members]))
        out.append(row)
    return out


def write_report(report: Report, out_dir: str | os.PathLike, extra: Mapping[str, Mapping[str, object]] | None = None,
                 unit: str = "file") -> str:
    """Write ``metrics`` (per method), ``per_group`` and ``per_file`` tables (CSV + Markdown).

    ``extra`` adds columns to the summary rows (method -> {column: value}, e.g. training
    time). The time column is named ``seconds_per_<unit>``. Returns the summary's Markdown.
    """
    extra = extra or {}
    time_col = f"seconds_per_{unit}"
    mcols = [*report.metric_names, *(f"{m}_std" for m in report.metric_names)]
    extra_cols = list(dict.fromkeys(c for cols in extra.values() for c in cols))

    def rename(rows):
        return [{**{k: v for k, v in r.items() if k != "seconds_per_unit"}, time_col: r["seconds_per_unit"],
                 **extra.get(r["method"], {})} for r in rows]

    table = write_tables(rename(report.summary), out_dir, ["method", *mcols, "files", time_col, *extra_cols])
    per_group = write_tables(rename(report.per_group), out_dir, ["method", "group", *mcols, "files", time_col],
                             name="per_group")
    write_tables(rename(report.per_file), out_dir, ["method", "group", "file", *report.metric_names, time_col],
                 name="per_file")
    run_dir = Path(out_dir).resolve().parent
    flags_file = run_dir / "flags.txt"
    write_html_report(out_dir, f"Evaluation of {run_dir.name}",
                      {"Per method (mean and standard deviation over files)": table,
                       "Per method and test folder": per_group},
                      [*sorted(Path(out_dir).glob("*.png")), *sorted((run_dir / "psf").glob("*.png"))],
                      notes=[f"Run folder: {run_dir}. Tables as CSV and Markdown beside this file."],
                      settings=flags_file.read_text() if flags_file.is_file() else "")
    return table


def _write_sample_panel(panel_dir: Path, sample: Sample, outputs: Mapping[str, np.ndarray],
                        scores: Mapping[str, Mapping[str, float]]) -> Path:
    """A labelled figure of every method on one sample (:func:`tf_otcycle.figures.comparison_figure`)."""
    stem = f"{sample.group}_{Path(sample.name).stem}" if sample.group else Path(sample.name).stem
    title = f"{sample.group}/{sample.name}" if sample.group else sample.name
    if sample.panel == "volume":
        path, caption = panel_dir / f"{stem}.png", "maximum-intensity projections: XY, YZ (right), XZ (below)"
        images, target = {k: volume_views(v) for k, v in outputs.items()}, volume_views(sample.target)
    elif sample.panel == "image":
        path, caption, images, target = panel_dir / f"{stem}.png", "", dict(outputs), sample.target
    else:
        s = len(sample.target) // 2
        path, caption = panel_dir / f"{stem}_slice{s:03d}.png", f"slice {s} of {len(sample.target)}; scores: whole file"
        images, target = {k: v[s] for k, v in outputs.items()}, sample.target[s]
    comparison_figure(path, images, target, scores, title=title, caption=caption)
    return path


def write_tables(rows: Sequence[dict], out_dir: str | os.PathLike, columns: Sequence[str],
                 name: str = "metrics") -> str:
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


def write_psf_panel(path: str | os.PathLike, psfs: Mapping[str, np.ndarray]) -> None:
    """PNG of the central sections of each PSF: one labelled row per PSF (e.g. learned, true),
    columns XY, XZ, YZ for a 3-D PSF (one XY panel for a 2-D one), each row scaled to its maximum."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    def sections(p):
        if p.ndim == 2:
            return {"XY": p}
        c = [n // 2 for n in p.shape]
        return {"XY (central z)": p[c[0]], "XZ (central y)": p[:, c[1], :], "YZ (central x)": p[:, :, c[2]]}

    rows = {name: sections(np.asarray(p, np.float32)) for name, p in psfs.items()}
    cols = max(len(r) for r in rows.values())
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.2 * cols, 2.2 * len(rows)), squeeze=False,
                             constrained_layout=True)
    for i, (name, row) in enumerate(rows.items()):
        top = max(float(v.max()) for v in row.values()) or 1.0
        for j, (label, image) in enumerate(row.items()):
            axes[i, j].imshow(image / top, cmap="magma", vmin=0, vmax=1)
            axes[i, j].set_title(f"{name}: {label}", fontsize=8)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        for j in range(len(row), cols):
            axes[i, j].set_visible(False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
