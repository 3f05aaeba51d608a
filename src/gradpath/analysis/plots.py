"""Figures for a report (docs/gradient-paths.md §7): the loss→input path-length histogram (Veit et al.'s view)
and a timestamp raster in the style of the paper's Fig. 7 (x = units in forward order, y = round k, marker
area ∝ N(u, k)).

Drawn on a ``matplotlib.figure.Figure`` created directly, never through pyplot, so no process-wide backend or
figure registry is touched (a notebook user's backend stays as it was) and it works headless.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from gradpath.analysis.report import Report
from gradpath.errors import GradpathError

if TYPE_CHECKING:  # type names only; matplotlib itself is imported where a figure is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def check_plot_path(path: str | os.PathLike, option: str = "--plot") -> Path:
    """The figure file must be in an existing, writable folder and have an image suffix matplotlib writes."""
    # matplotlib is an optional heavy import (about 0.3 s): only when a plot is asked for
    from matplotlib.backend_bases import FigureCanvasBase

    p = Path(path)
    if p.is_dir():
        raise GradpathError(f"{option} {path}: is a folder; give a file name such as {p / 'paths.png'}")
    folder = p.parent
    if not folder.is_dir():
        raise GradpathError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise GradpathError(f"{option} {path}: the folder {folder} is not writable")
    kinds = FigureCanvasBase.get_supported_filetypes()
    if p.suffix.lower().lstrip(".") not in kinds:
        raise GradpathError(f"{option} {path}: unknown image type {p.suffix or '(no suffix)'}; "
                            f"use one of {', '.join('.' + k for k in sorted(kinds))}")
    return p


def _hist(ax: Axes, rep: Report, color: str | None = None) -> None:
    prof = rep.input_profile()
    tot = sum(prof.values()) or 1
    ks = sorted(prof)
    ax.bar(ks, [prof[k] / tot for k in ks], width=0.8, alpha=0.6, label=rep.model_name, color=color)
    ax.set_xlabel("path length to the input (units on the path)")
    ax.set_ylabel("share of loss→input paths")
    ax.set_title("gradient path lengths to the input")


def _raster(ax: Axes, rep: Report) -> None:
    units = [v for v in rep.units if v.T]
    xs, ys, ss = [], [], []
    for i, v in enumerate(units):
        prof = rep.profile(v)
        mx = max(prof.values())
        for k, n in prof.items():
            xs.append(i)
            ys.append(k)
            # area ∝ N(u,k) relative to the unit's largest count; log-compressed for huge counts
            ss.append(8 + 60 * (math.log1p(n) / math.log1p(mx) if mx > 1 else 1.0))
    ax.scatter(xs, ys, s=ss, c=ys, cmap="viridis", edgecolors="none")
    ax.set_xlabel("unit (forward order; channel groups are adjacent columns)")
    ax.set_ylabel("gradient timestamp k (round)")
    net = rep.network()  # builds every gradient combination: once
    ax.set_title(f"{rep.model_name}: timestamps (LGP {net['lgp']}, LSGP {net['lsgp']})")
    if len(units) <= 40:
        ax.set_xticks(range(len(units)))
        ax.set_xticklabels([v.id for v in units], rotation=90, fontsize=6)
    ax.invert_yaxis()


def report_figure(rep: Report, others: Sequence[Report] = ()) -> Figure:
    """Histogram of every report (overlaid) on the first axes, then one timestamp raster per report."""
    # matplotlib is an optional heavy import: only when a figure is drawn
    from matplotlib.figure import Figure

    reps = [rep, *others]
    fig = Figure(figsize=(11, 3.2 + 3.6 * len(reps)))
    axes = fig.subplots(1 + len(reps), 1, gridspec_kw={"height_ratios": [1] + [1.3] * len(reps)})
    for i, r in enumerate(reps):
        _hist(axes[0], r, color=COLORS[i % len(COLORS)])
    axes[0].legend()
    for ax, r in zip(axes[1:], reps):
        _raster(ax, r)
    fig.tight_layout()
    return fig


def plot_report(rep: Report, path: str | os.PathLike, others: Sequence[Report] = ()) -> str:
    """:func:`report_figure` saved to ``path`` (the format follows its suffix)."""
    report_figure(rep, others).savefig(path, dpi=110)
    return str(path)
