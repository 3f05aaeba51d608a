"""YOLOR implicit knowledge (Wang, Yeh, Liao 2021; the "I" of the paper's ISegment decoder, §4 / Tables 3–8).

- ``ImplicitA(C)``: a learned per-channel offset added to a feature map, y = x + a, a ~ N(0, 0.02).
- ``ImplicitM(C)``: a learned per-channel scale, y = x · m, m ~ N(1, 0.02).

Neither is counted in FLOPs (YOLOv5's counting rule, docs/counting.md); both are counted as parameters.
Shapes: (N, C, H, W) → (N, C, H, W) (any trailing dims broadcast against (1, C, 1, 1)).

On the ``meta`` device (``gradpath analyze`` builds registered models there) the draw is skipped: a meta tensor has
no values, and ``normal_`` on one runs torch's Python reference kernels, whose first use imports the compiler stack
(seconds of start-up for nothing).
"""
from __future__ import annotations

import torch
from torch import nn


class ImplicitA(nn.Module):
    def __init__(self, channels: int, std: float = 0.02) -> None:
        super().__init__()
        self.channels = channels
        self.implicit = nn.Parameter(torch.zeros(1, channels, 1, 1))
        if not self.implicit.is_meta:
            nn.init.normal_(self.implicit, mean=0.0, std=std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.implicit


class ImplicitM(nn.Module):
    def __init__(self, channels: int, std: float = 0.02) -> None:
        super().__init__()
        self.channels = channels
        self.implicit = nn.Parameter(torch.ones(1, channels, 1, 1))
        if not self.implicit.is_meta:
            nn.init.normal_(self.implicit, mean=1.0, std=std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.implicit
