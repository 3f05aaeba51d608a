"""Optimizers and learning-rate schedules of the YOLOv5 recipe the paper trains with (Sec. 5.1: the paper names
r6.2; the segmentation code this follows first shipped in YOLOv5 v7.0).

Parameters are split in three groups as that recipe does: conv/linear weights take weight decay; normalisation
weights, YOLOR's implicit vectors and the remaining 1-D parameters do not; biases get their own group because
warm-up starts their learning rate high (``warmup_bias_lr``) while every other group starts at 0.
The schedule is per *iteration* (a ``LambdaLR`` stepped every optimizer step), so ``--resume`` restores it
exactly from ``last_epoch``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from gradpath.errors import GradpathError
from gradpath.nn.implicit import ImplicitA, ImplicitM

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "linear", "step")


# Modules whose weights are scales or offsets, not filters: decay would pull them towards 0 (a BatchNorm γ or
# an ImplicitM scale that starts at 1) or shrink a learned offset, so none of their parameters is decayed.
NO_DECAY_MODULES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, ImplicitA, ImplicitM,
)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Three groups: [decayed weights, undecayed weights, biases] (empty groups are dropped).

    Undecayed: every parameter of a :data:`NO_DECAY_MODULES` module — norms, and YOLOR's implicit vectors, whose
    (1, C, 1, 1) shape would otherwise pass for a conv weight (yolov7 u7 keeps them out of decay too) — and any
    other parameter with at most one dimension."""
    decay, no_decay, bias = [], [], []
    seen: set[int] = set()
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if pname == "bias":
                bias.append(p)
            elif isinstance(module, NO_DECAY_MODULES) or p.ndim <= 1:
                no_decay.append(p)
            else:
                decay.append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "group": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "group": "no_decay"},
        {"params": bias, "weight_decay": 0.0, "group": "bias"},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, name: str = "sgd", lr0: float = 0.01, momentum: float = 0.937,
                    weight_decay: float = 5e-4) -> torch.optim.Optimizer:
    """SGD (Nesterov, the paper's recipe) or AdamW; ``momentum`` is AdamW's beta1."""
    name = name.lower()
    groups = param_groups(model, weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr0, momentum=momentum, nesterov=True)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr0, betas=(momentum, 0.999))
    raise GradpathError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")


@dataclass
class LRFactor:
    """Multiplier of the base learning rate at iteration ``it`` (a picklable callable, so ``LambdaLR`` saves it).

    After warm-up the factor falls from 1 to ``lrf`` over ``total_iters``: cosine or linear (YOLOv5's one-cycle
    shapes made per-iteration), or ``step``, the classifiers' staircase — constant, then ``sqrt(lrf)`` from a
    third of the run, then ``lrf`` from two thirds (``lrf`` 0.01: the classic two drops by 10x). During the first ``warmup_iters`` it rises linearly from ``start`` to the
    scheduled value — ``start`` is 0 for weights and ``warmup_bias_lr / lr0`` for biases.
    """

    total_iters: int
    warmup_iters: int = 0
    lrf: float = 0.01
    kind: str = "cosine"
    start: float = 0.0

    def main(self, it: int) -> float:
        x = min(max(it / max(self.total_iters, 1), 0.0), 1.0)
        if self.kind == "cosine":
            return ((1 - math.cos(x * math.pi)) / 2) * (self.lrf - 1) + 1
        if self.kind == "step":
            return self.lrf ** (min(math.floor(3 * x), 2) / 2)
        return (1 - x) * (1.0 - self.lrf) + self.lrf

    def __call__(self, it: int) -> float:
        target = self.main(it)
        if it < self.warmup_iters:
            return self.start + (target - self.start) * it / self.warmup_iters
        return target


def build_scheduler(optimizer: torch.optim.Optimizer, total_iters: int, warmup_iters: int, lrf: float = 0.01,
                    kind: str = "cosine", warmup_bias_lr: float = 0.1, lr0: float = 0.01) -> torch.optim.lr_scheduler.LambdaLR:
    if kind not in SCHEDULES:
        raise GradpathError(f"unknown lr schedule {kind!r}; choose one of: {', '.join(SCHEDULES)}")
    lambdas = []
    for g in optimizer.param_groups:
        start = (warmup_bias_lr / lr0) if (g.get("group") == "bias" and lr0 > 0) else 0.0
        lambdas.append(LRFactor(total_iters, warmup_iters, lrf, kind, start))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


def warmup_momentum(optimizer: torch.optim.Optimizer, it: int, warmup_iters: int, start: float, end: float) -> None:
    """Momentum (SGD) / beta1 (AdamW) rises from ``start`` to ``end`` during warm-up, as in YOLOv5."""
    if warmup_iters <= 0 or it > warmup_iters:
        return
    m = start + (end - start) * min(it / warmup_iters, 1.0)
    for g in optimizer.param_groups:
        if "momentum" in g:
            g["momentum"] = m
        elif "betas" in g:
            g["betas"] = (m, g["betas"][1])
