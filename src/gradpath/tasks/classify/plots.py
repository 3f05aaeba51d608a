"""The classification task's figure: the confusion matrix.

Drawn on a ``matplotlib.figure.Figure`` with its own canvas, so a caller's pyplot backend and state are never
touched. ``confusion_figure`` builds the figure (tests read its image array and labels); ``plot_confusion_matrix``
saves it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = ["confusion_figure", "plot_confusion_matrix"]

LABELLED_MAX = 60  # above this many classes tick labels would overlap into a black band: leave them off
ANNOTATED_MAX = 12  # cell values are printed only while they still fit in a cell


def confusion_figure(confusion: torch.Tensor | np.ndarray, names: Sequence[str], normalize: bool = True) -> Figure:
    """Rows = true class, columns = predicted. ``normalize`` divides each row by its sample count, so a cell is
    the fraction of that class predicted as the column's (a class without samples stays a row of zeros)."""
    cm = np.asarray(confusion.cpu() if isinstance(confusion, torch.Tensor) else confusion, dtype=np.float64)
    nc = len(names)
    if cm.shape != (nc, nc):
        raise ValueError(f"confusion matrix is {cm.shape} but there are {nc} class names")
    if normalize:
        rows = cm.sum(1, keepdims=True)
        cm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    side = min(max(4.0, 0.28 * nc + 2.5), 30.0)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    image = ax.imshow(cm, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(cm.max(), 1.0),
                      interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set(xlabel="predicted", ylabel="true",
           title="confusion matrix" + (" (fraction of each true class)" if normalize else " (counts)"))
    if nc <= LABELLED_MAX:
        ax.set_xticks(range(nc), labels=list(names), rotation=90, fontsize=7)
        ax.set_yticks(range(nc), labels=list(names), fontsize=7)
    if nc <= ANNOTATED_MAX:
        for i in range(nc):
            for j in range(nc):
                text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if cm[i, j] > 0.5 * image.norm.vmax else "black")
    fig.tight_layout()
    return fig


def plot_confusion_matrix(confusion: torch.Tensor | np.ndarray, names: Sequence[str], path: str | Path,
                          normalize: bool = True) -> Path:
    """Save ``confusion_figure(...)`` to ``path`` (format from the suffix) and return the path."""
    path = Path(path)
    confusion_figure(confusion, names, normalize).savefig(path, dpi=110)
    return path
