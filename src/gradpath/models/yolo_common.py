"""Neck and pooling blocks shared by the YOLO-family bodies (docs/reconstructions.md); the width/depth scaling
lives in :mod:`gradpath.models.scaling`.

All convs are Conv+BN+SiLU (``ConvBNAct``) unless stated. Every block declares ``out_channels``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from gradpath.errors import GradpathError
from gradpath.models.scaling import Scaler, check_scale, make_divisible
from gradpath.nn import ConvBNAct, res_block

__all__ = ["C3", "CSPB", "Lateral", "MPDown", "SPP", "SPPCSPC", "SPPF", "Scaler", "check_detector_scale",
           "make_divisible"]


def check_detector_scale(num_classes: int, width: float, depth: float) -> None:
    """The config checks every YOLO-family detector shares: classes, and the width/depth multipliers."""
    if num_classes < 1:
        raise GradpathError(f"num_classes must be >= 1, got {num_classes}")
    check_scale(width, depth)


class SPP(nn.Module):
    """YOLOv3-SPP: 1×1 c1→h, max-pools 5/9/13 (stride 1) concatenated with their input, 1×1 4h→c2;
    h = c1/2 unless given."""

    def __init__(self, c1: int, c2: int, k: Sequence[int] = (5, 9, 13), hidden: int | None = None) -> None:
        super().__init__()
        h = hidden or c1 // 2
        self.cv1 = ConvBNAct(c1, h, 1)
        self.pools = nn.ModuleList(nn.MaxPool2d(x, 1, x // 2) for x in k)
        self.cv2 = ConvBNAct(h * (len(k) + 1), c2, 1)
        self.out_channels = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [p(x) for p in self.pools], 1))


class SPPF(nn.Module):
    """YOLOv5 SPPF: 1×1 c1→h, three chained 5×5 max-pools, cat 4h, 1×1 → c2 (= SPP(5, 9, 13)); h = c1/2 unless
    given."""

    def __init__(self, c1: int, c2: int, k: int = 5, hidden: int | None = None) -> None:
        super().__init__()
        h = hidden or c1 // 2
        self.cv1 = ConvBNAct(c1, h, 1)
        self.pool = nn.MaxPool2d(k, 1, k // 2)
        self.cv2 = ConvBNAct(4 * h, c2, 1)
        self.out_channels = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat([x, y1, y2, self.pool(y2)], 1))


class SPPCSPC(nn.Module):
    """SPP inside a CSP stage (YOLOR-CSP / YOLOv7): path 1×1, 3×3, 1×1, SPP(5, 9, 13), 1×1, 3×3; cross 1×1;
    cat, 1×1 → c2. Hidden width h = c2."""

    def __init__(self, c1: int, c2: int, k: Sequence[int] = (5, 9, 13)) -> None:
        super().__init__()
        h = c2
        self.cv1 = ConvBNAct(c1, h, 1)
        self.cv2 = ConvBNAct(c1, h, 1)
        self.cv3 = ConvBNAct(h, h, 3)
        self.cv4 = ConvBNAct(h, h, 1)
        self.pools = nn.ModuleList(nn.MaxPool2d(x, 1, x // 2) for x in k)
        self.cv5 = ConvBNAct((len(k) + 1) * h, h, 1)
        self.cv6 = ConvBNAct(h, h, 3)
        self.cv7 = ConvBNAct(2 * h, c2, 1)
        self.out_channels = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.cv4(self.cv3(self.cv1(x)))
        y1 = self.cv6(self.cv5(torch.cat([x1] + [p(x1) for p in self.pools], 1)))
        return self.cv7(torch.cat([y1, self.cv2(x)], 1))


class CSPB(nn.Module):
    """YOLOR-CSP neck stage (BottleneckCSPB): x1 = 1×1 c1→c2; path n × [1×1, 3×3] on x1 without residual;
    cross 1×1 on x1; cat 2·c2, 1×1 → c2. Kept fixed in every Table 6 variant
    (docs/reconstructions.md#csp-fusion)."""

    def __init__(self, c1: int, c2: int, n: int = 1) -> None:
        super().__init__()
        self.cv1 = ConvBNAct(c1, c2, 1)
        self.m = nn.Sequential(*[nn.Sequential(ConvBNAct(c2, c2, 1), ConvBNAct(c2, c2, 3)) for _ in range(n)])
        self.cv2 = ConvBNAct(c2, c2, 1)
        self.cv3 = ConvBNAct(2 * c2, c2, 1)
        self.out_channels = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.cv1(x)
        return self.cv3(torch.cat([self.m(x1), self.cv2(x1)], 1))


class C3(nn.Module):
    """YOLOv5 C3 (a CSP stage with fusion first): cv1 1×1 c1→h → n × [1×1 h→h, 3×3 h→h, (+x)]; cv2 1×1 c1→h;
    cat 2h, 1×1 → c2; h = c2/2 unless given."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, hidden: int | None = None) -> None:
        super().__init__()
        h = hidden or c2 // 2
        self.cv1 = ConvBNAct(c1, h, 1)
        self.cv2 = ConvBNAct(c1, h, 1)
        self.m = nn.Sequential(*[res_block(h, h, shortcut="add" if shortcut else "none") for _ in range(n)])
        self.cv3 = ConvBNAct(2 * h, c2, 1)
        self.out_channels = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat([self.m(self.cv1(x)), self.cv2(x)], 1))


class MPDown(nn.Module):
    """YOLOv7 MP-down: branch A = max-pool 2×2 s2 → 1×1 c1→c; branch B = 1×1 c1→c → 3×3 s2; cat [B, A] (2c)."""

    def __init__(self, c1: int, c: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, 2)
        self.cv_a = ConvBNAct(c1, c, 1)
        self.cv_b1 = ConvBNAct(c1, c, 1)
        self.cv_b2 = ConvBNAct(c, c, 3, 2)
        self.out_channels = 2 * c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.cv_b2(self.cv_b1(x)), self.cv_a(self.pool(x))], 1)


class Lateral(nn.Module):
    """Top-down FPN step: 1×1 on the coarse map, nearest ×2, cat with ``lateral(fine)`` (or the raw fine map
    when ``fine_conv_out`` is None)."""

    def __init__(self, c_coarse: int, c_up: int, c_fine: int, fine_conv_out: int | None) -> None:
        super().__init__()
        self.reduce = ConvBNAct(c_coarse, c_up, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral: nn.Module = ConvBNAct(c_fine, fine_conv_out, 1) if fine_conv_out else nn.Identity()
        self.out_channels = c_up + (fine_conv_out or c_fine)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (reduced coarse map before upsampling, concatenation)."""
        r = self.reduce(coarse)
        return r, torch.cat([self.lateral(fine), self.up(r)], 1)
