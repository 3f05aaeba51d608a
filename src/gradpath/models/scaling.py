"""Width and depth multipliers shared by every model family (YOLOv5's ``width_multiple``/``depth_multiple``).

Why one rule for all: at width 1.0 every figure must be the paper's, so nothing is rounded; below it, widths are
rounded up to a multiple of 8. Misaligned widths are slow out of proportion to their FLOPs on CPU (oneDNN
vectorises channels in blocks of 8/16: a width-0.26 YOLOR-ELAN with 20/36/68-channel convs trained at 10 img/s
against 16.9 at width 0.25, with 8% fewer FLOPs), so the *derived* widths (a half, a quarter of a scaled width)
are rounded the same way as the scaled ones.
"""
from __future__ import annotations

import math

from gradpath.errors import GradpathError


def make_divisible(x: float, divisor: int = 8) -> int:
    """YOLOv5's channel rounding: the smallest multiple of ``divisor`` ≥ x."""
    return int(math.ceil(x / divisor) * divisor)


def check_scale(width: float, depth: float) -> None:
    """Width and depth multipliers are in (0, 4]."""
    if not (0 < width <= 4 and 0 < depth <= 4):
        raise GradpathError(f"width and depth must be in (0, 4], got {width}, {depth}")


class Scaler:
    """Width/depth multipliers: channels are rounded up to a multiple of 8, repeats to the nearest integer ≥ 1.
    At (1, 1) every figure is the paper's."""

    def __init__(self, width: float = 1.0, depth: float = 1.0) -> None:
        self.width, self.depth = width, depth

    def c(self, chs: int) -> int:
        """A paper width, scaled."""
        return chs if self.width == 1.0 else make_divisible(chs * self.width, 8)

    def derived(self, chs: int, divisor: int = 8) -> int:
        """A width computed from scaled ones (e.g. half a stage width): kept as is at width 1.0, else rounded up to
        a multiple of ``divisor`` (8, or a multiple of a grouped conv's groups)."""
        return chs if self.width == 1.0 else make_divisible(chs, divisor)

    def n(self, repeats: int) -> int:
        """A paper repeat count, scaled."""
        return repeats if self.depth == 1.0 else max(round(repeats * self.depth), 1)
