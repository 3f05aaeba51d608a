"""Per-epoch curves from ``results.csv`` (matplotlib, headless)."""
from __future__ import annotations

import csv
import math
from pathlib import Path


def plot_results(csv_path: str | Path, out: str | Path | None = None) -> Path | None:
    """One small panel per numeric column of ``results.csv`` against the epoch; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 2.6 * nrows), squeeze=False)
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
    plt.close(fig)
    return out


def plot_pr_curves(pr_curve: dict, out: str | Path) -> Path | None:
    """Precision-recall at IoU 0.5, one panel per kind (box, mask): a thin line per class and a thick class mean.

    ``pr_curve`` is ``{kind: {"recall": [...], "precision": {label: [...]}} | None}`` (``evaluate_coco``'s).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [(k, v) for k, v in pr_curve.items() if v and v.get("precision")]
    if not kinds:
        return None
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.8), squeeze=False)
    for ax, (kind, cur) in zip(axes.flat, kinds):
        for label, prec in cur["precision"].items():
            mean = label == "all classes"
            ap50 = sum(prec) / len(prec)
            ax.plot(cur["recall"], prec, linewidth=2.5 if mean else 1.0, color="black" if mean else None,
                    label=f"{label} {ap50:.3f}")
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=f"{kind} PR @ IoU 0.5")
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
