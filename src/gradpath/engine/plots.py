"""Per-epoch curves from ``results.csv``.

Drawn on a ``matplotlib.figure.Figure`` with its own Agg canvas, so a notebook's or a caller's pyplot backend and
state are never touched.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from matplotlib.figure import Figure

__all__ = ["plot_results"]


def plot_results(csv_path: str | Path, out: str | Path | None = None) -> Path | None:
    """One small panel per loss/metric column of ``results.csv`` against the epoch; returns the PNG path."""
    csv_path = Path(csv_path)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    cols = [c for c in rows[0] if c not in ("epoch", "time_s") and not c.startswith("lr/")]
    epochs = [int(r["epoch"]) for r in rows]
    n = len(cols)
    ncols = min(5, max(n, 1))
    nrows = max(math.ceil(n / ncols), 1)
    fig = Figure(figsize=(3 * ncols, 2.6 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, col in zip(axes.flat, cols):
        pts = [(e, float(r[col])) for e, r in zip(epochs, rows) if r.get(col) not in ("", None)]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", linewidth=1.5)
        ax.set_title(col, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    out = Path(out) if out else csv_path.with_name("results.png")
    fig.savefig(out, dpi=110)
    return out
