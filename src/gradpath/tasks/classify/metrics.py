"""Classification metrics: top-1, top-k (k = min(5, classes)), per-class accuracy and the confusion matrix.

Ties are broken by class index, as a stable descending sort (and ``torch.argmax``) would: the rank of the true
class is the number of classes that score higher, plus those that score equally with a lower index. So the top-1
hit, the confusion matrix's predicted column and the top-k hit always agree with each other.

Under DDP the caller gathers logits and targets from every rank first; this function sees one set.
"""
from __future__ import annotations

from typing import Sequence

import torch

from gradpath.errors import GradpathError

__all__ = ["classification_metrics"]


def classification_metrics(outputs: torch.Tensor, targets: torch.Tensor, names: Sequence[str]) -> dict:
    """Score ``outputs`` — logits/scores ``(N, C)`` or predicted class indices ``(N,)`` — against ``targets``.

    Returns ``{"n", "top1", "top5", "k", "per_class", "confusion"}``: accuracies are fractions in [0, 1];
    ``top5`` is the top-``k`` accuracy with ``k = min(5, C)`` (``None`` when only predictions are given);
    ``per_class[c]`` is the accuracy on the samples of class ``c`` (``None`` if it has none); ``confusion`` is
    an int64 ``(C, C)`` CPU tensor, rows = true class, columns = predicted class.
    """
    nc = len(names)
    if nc < 1:
        raise GradpathError("classification metrics need at least one class name")
    targets = torch.as_tensor(targets).detach().to("cpu", torch.int64).flatten()
    outputs = torch.as_tensor(outputs).detach().cpu()
    n = targets.numel()
    if n == 0:
        raise GradpathError("no samples to score: the validation set is empty")
    if outputs.shape[0] != n:
        raise ValueError(f"outputs have {outputs.shape[0]} rows but targets {n}")
    if targets.min() < 0 or targets.max() >= nc:
        bad = int(targets[(targets < 0) | (targets >= nc)][0])
        raise GradpathError(f"target class {bad} is outside 0..{nc - 1} ({nc} class names)")

    k = min(5, nc)
    if outputs.ndim == 2:
        if outputs.shape[1] != nc:
            raise ValueError(f"outputs have {outputs.shape[1]} columns but there are {nc} class names")
        scores = outputs.float()
        true = scores.gather(1, targets[:, None])
        col = torch.arange(nc)[None, :]
        rank = (scores > true).sum(1) + ((scores == true) & (col < targets[:, None])).sum(1)
        preds = scores.argmax(1)  # first maximum: consistent with the rank rule above
        top1 = float((rank == 0).double().mean())
        topk: float | None = float((rank < k).double().mean())
    elif outputs.ndim == 1:
        preds = outputs.to(torch.int64)
        if preds.min() < 0 or preds.max() >= nc:
            raise ValueError(f"predicted class outside 0..{nc - 1}")
        top1 = float((preds == targets).double().mean())
        topk = None
    else:
        raise ValueError(f"outputs must be (N, C) scores or (N,) predictions, got shape {tuple(outputs.shape)}")

    confusion = torch.bincount(targets * nc + preds, minlength=nc * nc).view(nc, nc)
    support = confusion.sum(1)
    per_class = [float(confusion[c, c]) / float(support[c]) if support[c] else None for c in range(nc)]
    return {"n": n, "top1": top1, "top5": topk, "k": k, "per_class": per_class, "confusion": confusion}
