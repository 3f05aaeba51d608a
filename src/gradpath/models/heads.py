"""Heads shared by model families."""
from __future__ import annotations

import torch
from torch import nn


class ClassifierHead(nn.Module):
    """Global average pool, then a linear classifier (darknet's GAP + 1×1 conv to the classes, with bias).

    Shapes: (N, C, H, W) → (N, num_classes).
    """

    def __init__(self, in_chs: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_chs, num_classes)
        self.out_channels = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(x), 1))
