"""Labelled comparison figures and the HTML evaluation report (matplotlib, no display)."""

from __future__ import annotations

import html
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from tf_otcycle.io_utils import atomic_write_bytes, atomic_write_text

ERROR_PERCENTILE = 99.5  # the error row's colour scale: this percentile of all methods' errors


def comparison_figure(path: str | os.PathLike, images: Mapping[str, np.ndarray], target: np.ndarray,
                      scores: Mapping[str, Mapping[str, float]] | None = None, title: str = "",
                      caption: str = "") -> None:
    """One column per method and one for the target: the images on the target's grey scale
    (top), ``|image - target|`` on one shared colour scale with a colour bar (bottom); each
    column titled with the method and its scores (PSNR, SSIM). Errors are shown relative to the
    target's maximum, so the colour bar reads the same in any file's units. Written atomically as PNG.

    Args:
        images: method -> 2-D image (a slice, or :func:`tf_otcycle.evaluation.volume_views`).
        target: 2-D reference of the same shape.
        scores: method -> {"psnr": dB, "ssim": ...} to print in the titles.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    scores = scores or {}
    names = [*images, "target"]
    arrays = [*images.values(), target]
    vmax = float(np.max(target)) or 1.0
    errors = [np.abs(a - target) / vmax for a in images.values()]  # relative to the target's maximum
    emax = float(np.percentile(np.concatenate([e.ravel() for e in errors]), ERROR_PERCENTILE)) if errors else 1.0
    emax = emax or 1.0
    h, w = target.shape
    scale = 2.6 / max(h, w)
    fig, axes = plt.subplots(2, len(names), figsize=(len(names) * w * scale + 0.8, 2 * h * scale + 1.0),
                             squeeze=False, constrained_layout=True)
    for col, (name, array) in enumerate(zip(names, arrays)):
        axes[0, col].imshow(array, cmap="gray", vmin=0, vmax=vmax)
        s = scores.get(name, {})
        label = name + ("".join(f"\n{k.upper()} {v:.2f}{' dB' if k == 'psnr' else ''}" for k, v in s.items()
                                if k in ("psnr", "ssim")))
        axes[0, col].set_title(label, fontsize=8)
        if col < len(errors):
            shown = axes[1, col].imshow(errors[col], cmap="magma", vmin=0, vmax=emax)
        axes[1, col].set_visible(col < len(errors))
        for row in (0, 1):
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
    if errors:
        bar = fig.colorbar(shown, ax=axes[1, : len(errors)].tolist(), shrink=0.9)
        bar.set_label(f"|output - target| / max(target) (0 to the {ERROR_PERCENTILE:g}th percentile)", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    if caption:
        fig.text(0.01, 0.005, caption, fontsize=6)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def markdown_table_html(markdown: str) -> str:
    """A Markdown pipe table (as :func:`tf_otcycle.evaluation.write_tables` writes) as HTML."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in markdown.strip().splitlines()]
    rows = [r for r in rows if not all(set(c) <= {"-", ":"} for c in r)]
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_html_report(out_dir: str | os.PathLike, title: str, tables: Mapping[str, str],
                      figures: Sequence[str | os.PathLike], notes: Sequence[str] = (), settings: str = "") -> Path:
    """``<out_dir>/report.html``: the tables (Markdown in), the figures (linked by relative
    path, so the folder can be copied), notes and the run's settings (``flags.txt``);
    written atomically. Returns its path."""
    out_dir = Path(out_dir)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p>{html.escape(n)}</p>" for n in notes]
    for name, markdown in tables.items():
        parts += [f"<h2>{html.escape(name)}</h2>", markdown_table_html(markdown)]
    if settings:
        parts += ["<h2>Settings (flags.txt)</h2>", f"<pre>{html.escape(settings)}</pre>"]
    if figures:
        parts.append("<h2>Figures</h2>")
    for fig in figures:
        rel = os.path.relpath(fig, out_dir)
        parts.append(f'<figure><img src="{html.escape(rel)}" style="max-width:100%"><figcaption>{html.escape(rel)}'
                     "</figcaption></figure>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#eee}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
    atomic_write_text(out_dir / "report.html", page)
    return out_dir / "report.html"
