"""Exponential moving average of the weights (Polyak averaging), evaluated and saved as the final model.

The decay ramps up as ``decay * (1 - exp(-updates / tau))`` so the first updates follow the live weights
closely (the YOLOv5-r6.2 recipe the paper trains with, Sec. 5.1). Buffers (BN running stats) are averaged too.

The EMA averages over about ``1 / (1 - decay)`` updates: 10,000 for YOLOv5's 0.9999, a few epochs of a COCO run
(~550,000 updates in 300 epochs). A run of a few thousand updates with that decay evaluates weights made mostly
of its early epochs: with ``tau`` 100 and 2,250 updates, three quarters of the final EMA are the weights of updates
300-700. ``recent_share`` measures this, and the trainer warns when the second half of a run would make up less
than half of its EMA.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from gradpath.engine.utils import unwrap


def recent_share(decay: float, tau: float, total: int, recent: int) -> float:
    """The share of the EMA after ``total`` updates that comes from the last ``recent`` of them.

    The weights before update ``total - recent`` keep the product of the decays of the updates since, so the
    share is one minus that product.
    """
    keep = 1.0
    for n in range(max(total - recent, 0) + 1, total + 1):
        keep *= decay * (1 - math.exp(-n / tau)) if tau > 0 else decay
    return 1.0 - keep


def suggested_decay(total: int) -> float:
    """A decay whose horizon is an eighth of a ``total``-update run (its second half then makes ~98% of the EMA)."""
    return min(max(round(1 - 8 / max(total, 1), 4), 0.9), 0.9999)


class ModelEMA:
    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0) -> None:
        self.ema = copy.deepcopy(unwrap(model)).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.tau = tau
        self.updates = updates

    def current_decay(self) -> float:
        return self.decay * (1 - math.exp(-self.updates / self.tau)) if self.tau > 0 else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        live = unwrap(model).state_dict()
        for name, v in self.ema.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(live[name].detach(), alpha=1 - d)
            else:  # e.g. BN num_batches_tracked
                v.copy_(live[name])

    def state_dict(self) -> dict:
        return {"ema": self.ema.state_dict(), "updates": self.updates, "decay": self.decay, "tau": self.tau}

    def load_state_dict(self, state: dict) -> None:
        self.ema.load_state_dict(state["ema"])
        self.updates = int(state["updates"])
        self.decay = float(state.get("decay", self.decay))
        self.tau = float(state.get("tau", self.tau))
