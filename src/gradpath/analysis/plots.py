"""Figures for a report (§7): the loss→input path-length histogram (Veit et al.'s view) and a timestamp
raster in the style of the paper's Fig. 7 (x = units in forward order, y = round k, marker area ∝ N(u, k)).
matplotlib with the Agg backend, so it works headless.
"""
from __future__ import annotations

import math
from typing import Sequence

from gradpath.analysis.report import Report


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _hist(ax, rep: Report, label: str | None = None, color: str | None = None) -> None:
    prof = rep.input_profile()
    tot = sum(prof.values()) or 1
    ks = sorted(prof)
    ax.bar(ks, [prof[k] / tot for k in ks], width=0.8, alpha=0.6, label=label or rep.model_name, color=color)
    ax.set_xlabel("path length to the input (units on the path)")
    ax.set_ylabel("share of loss→input paths")
    ax.set_title("gradient path lengths to the input")


def _raster(ax, rep: Report) -> None:
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


def plot_report(rep: Report, path: str, others: Sequence[Report] = ()) -> str:
    """Histogram (all reports overlaid) on top, one timestamp raster per report below; saved as PNG."""
    plt = _plt()
    reps = [rep, *others]
    fig, axes = plt.subplots(1 + len(reps), 1, figsize=(11, 3.2 + 3.6 * len(reps)),
                             gridspec_kw={"height_ratios": [1] + [1.3] * len(reps)})
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for i, r in enumerate(reps):
        _hist(axes[0], r, color=colors[i % 4])
    axes[0].legend()
    for ax, r in zip(axes[1:], reps):
        _raster(ax, r)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
