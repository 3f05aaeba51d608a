"""The segmentation task's figures: a grid of val predictions and precision-recall curves.

Drawn on ``matplotlib.figure.Figure`` objects with their own canvas, so a caller's pyplot backend and state are
never touched.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn
from torch.utils.data import DataLoader

from gradpath.tasks.segment.postprocess import non_max_suppression, process_masks

__all__ = ["plot_val_predictions", "plot_pr_curves", "pr_curves_figure"]


@torch.no_grad()
def plot_val_predictions(model: nn.Module, loader: DataLoader, device: torch.device, out: str | Path,
                         names: Sequence[str], n: int = 16, conf: float = 0.25, iou_thres: float = 0.6) -> Path | None:
    """The first ``n`` val images with predicted masks and boxes (class name and score on each box)."""
    was_training = model.training
    model.eval()
    nm = int(model.head.nm)
    imgs, dets_all, masks_all = [], [], []
    for batch in loader:
        img = batch["img"].to(device).float() / 255.0
        pred, proto = model(img)
        for k, det in enumerate(non_max_suppression(pred, conf, iou_thres, max_det=50, nm=nm)):
            imgs.append(batch["img"][k].permute(1, 2, 0).numpy())
            det = det.cpu()
            masks_all.append(process_masks(proto[k].cpu(), det[:, 6:], det[:, :4], img.shape[2:]) if len(det) else None)
            dets_all.append(det)
        if len(imgs) >= n:
            break
    model.train(was_training)
    if not imgs:
        return None
    imgs, dets_all, masks_all = imgs[:n], dets_all[:n], masks_all[:n]
    cols = min(4, len(imgs))
    rows = (len(imgs) + cols - 1) // cols
    fig = Figure(figsize=(3 * cols, 3 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    cmap = colormaps["tab10"]
    for ax in axes.flat:
        ax.axis("off")
    for ax, im, det, masks in zip(axes.flat, imgs, dets_all, masks_all):
        shown = im.astype("float32") / 255.0
        for j in range(len(det)):
            colour = torch.tensor(cmap(int(det[j, 5]) % 10)[:3])
            m = masks[j].numpy()
            shown[m] = 0.5 * shown[m] + 0.5 * colour.numpy()
        ax.imshow(shown)
        for j in range(len(det)):
            x1, y1, x2, y2 = det[j, :4].tolist()
            c = int(det[j, 5])
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1.2, color=cmap(c % 10)))
            name = names[c] if c < len(names) else str(c)
            ax.text(x1, y1, f"{name} {det[j, 4]:.2f}", fontsize=6, color="white",
                    bbox=dict(facecolor=cmap(c % 10), pad=0.5, lw=0))
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    return out


def pr_curves_figure(pr_curve: dict) -> Figure | None:
    """Precision-recall at IoU 0.5, one panel per kind (box, mask): a thin line per class and a thick class mean,
    each labelled with its AP50. ``pr_curve`` is ``{kind: {"recall": [...], "precision": {label: [...]}} | None}``
    (``evaluate_coco``'s); None when there is nothing to draw."""
    kinds = [(k, v) for k, v in pr_curve.items() if v and v.get("precision")]
    if not kinds:
        return None
    fig = Figure(figsize=(4.2 * len(kinds), 3.8))
    axes = fig.subplots(1, len(kinds), squeeze=False)
    for ax, (kind, cur) in zip(axes.flat, kinds):
        for label, prec in cur["precision"].items():
            mean = label == "all classes"
            ap50 = sum(prec) / len(prec)
            ax.plot(cur["recall"], prec, linewidth=2.5 if mean else 1.0, color="black" if mean else None,
                    label=f"{label} {ap50:.3f}")
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=f"{kind} PR @ IoU 0.5")
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def plot_pr_curves(pr_curve: dict, out: str | Path) -> Path | None:
    """``pr_curves_figure`` saved to ``out`` (PNG); None when there is nothing to draw."""
    fig = pr_curves_figure(pr_curve)
    if fig is None:
        return None
    out = Path(out)
    fig.savefig(out, dpi=110)
    return out
