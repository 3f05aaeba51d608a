"""Residual connections at the layer level (paper §2.2, PRN; Fig. 9 stop-gradient ablations).

All forms are out-of-place (cat/pad/slice, never ``y[:, :k] += x``) so the gradient-path analyzer can follow
channel groups through them (docs/gradient-paths.md).

- ``add``:    y = x + F(x)                          (ResNet / darknet shortcut)
- ``masked``: y = F(x) + [x on a subset of channels] (PRN masked residual; the rest get no identity)
- ``asym``:   y = F(x) + x over the overlapping channels, keeping F(x)'s channel count; spatial sizes that
              differ by an integer factor are matched by strided sampling, as darknet's ``[shortcut]`` does
              (PRN asymmetric residual; darknet ResNet-50 without projection convs)
- ``none``:   y = F(x)

Stop-gradient (Fig. 9): ``"identity"`` detaches the identity branch (9a); ``"block"`` detaches the block's
*input* (9b; detaching its output would leave the block without gradient, docs/gradient-paths.md).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gradpath.errors import GradpathError, check_choice

SHORTCUTS = ("add", "masked", "asym", "none")
STOP_GRADIENT = (None, "identity", "block")


def check_stop_gradient(stop_gradient: str | None) -> None:
    if stop_gradient not in STOP_GRADIENT:
        raise GradpathError(f"stop_gradient must be one of None, 'identity', 'block'; got {stop_gradient!r}")


def masked_channels(channels: int, mask_ratio: float, position: str = "last") -> tuple[int, int]:
    """[start, end) of the channels that *receive* the identity under a masked residual.

    ``mask_ratio`` is the fraction of channels masked (no identity); ``position`` says whether the masked
    channels are the ``"last"`` (default) or ``"first"`` ones.
    """
    if not 0.0 <= mask_ratio <= 1.0:
        raise GradpathError(f"mask_ratio must be in [0, 1], got {mask_ratio}")
    keep = channels - int(round(channels * mask_ratio))
    if position == "last":
        return 0, keep
    if position == "first":
        return channels - keep, channels
    raise GradpathError(f"masked position must be 'first' or 'last', got {position!r}")


def masked_add(identity: torch.Tensor, y: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """y + identity on channels [start, end) only (out-of-place, via pad on the channel axis)."""
    c = y.shape[1]
    part = identity[:, start:end]
    return y + F.pad(part, (0, 0, 0, 0, start, c - end))


def asymmetric_add(identity: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Darknet ``[shortcut]`` between tensors of different shape; the result has ``y``'s shape.

    Channels: only the first min(C_x, C_y) are added. Space: a larger identity is sampled with its integer
    stride; a smaller one is added at every stride-th position of ``y`` (darknet's ``sample``).
    """
    cx, cy = identity.shape[1], y.shape[1]
    hx, hy = identity.shape[-2], y.shape[-2]
    if hx > hy:
        s = hx // hy
        identity = identity[..., ::s, ::s]
    elif hx < hy:
        s = hy // hx
        up = identity.new_zeros(identity.shape[:2] + y.shape[-2:])
        up[..., ::s, ::s] = identity
        identity = up
    if cx == cy:
        return y + identity
    if cx > cy:
        return y + identity[:, :cy]
    return y + F.pad(identity, (0, 0, 0, 0, 0, cy - cx))


# The channel map of this function for the gradient-path analyzer, which keeps it as one op (fx cannot trace its
# shape-dependent branches): the first min(C_x, C_y) channels of the identity are added to y's.
asymmetric_add.channel_rule = "prefix_add"  # type: ignore[attr-defined]


class Residual(nn.Module):
    """y = act(shortcut(x, branch(x))). Wraps any branch module; declares ``out_channels``.

    Args:
        branch: the computational path F (its output has ``out_channels`` channels).
        out_channels: channels of F(x) (and of y).
        shortcut: one of ``add``, ``masked``, ``asym``, ``none`` (see module docstring).
        mask_ratio / mask_position: for ``masked``; fraction of channels left without identity, default half.
        stop_gradient: None, ``"identity"`` (Fig. 9a) or ``"block"`` (Fig. 9b).
        act: activation after the addition (ResNet: leaky/ReLU; darknet/YOLO blocks: none).
    """

    def __init__(
        self,
        branch: nn.Module,
        out_channels: int,
        shortcut: str = "add",
        mask_ratio: float = 0.5,
        mask_position: str = "last",
        stop_gradient: str | None = None,
        act: nn.Module | None = None,
    ) -> None:
        super().__init__()
        check_choice("shortcut", shortcut, SHORTCUTS)
        check_stop_gradient(stop_gradient)
        self.branch = branch
        self.out_channels = out_channels
        self.shortcut = shortcut
        self.stop_gradient = stop_gradient
        self.mask = masked_channels(out_channels, mask_ratio, mask_position) if shortcut == "masked" else None
        self.act = act if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch(x.detach() if self.stop_gradient == "block" else x)
        if self.shortcut == "none":
            return self.act(y)
        identity = x.detach() if self.stop_gradient == "identity" else x
        if self.shortcut == "add":
            y = y + identity
        elif self.shortcut == "masked":
            y = masked_add(identity, y, *self.mask)
        else:
            y = asymmetric_add(identity, y)
        return self.act(y)

    def extra_repr(self) -> str:
        s = f"shortcut={self.shortcut}"
        if self.mask is not None:
            s += f", identity_channels={list(self.mask)}"
        if self.stop_gradient:
            s += f", stop_gradient={self.stop_gradient}"
        return s


class MaskedResidual(Residual):
    """PRN masked residual: the identity reaches only ``1 − mask_ratio`` of the channels (default half)."""

    def __init__(self, branch: nn.Module, out_channels: int, mask_ratio: float = 0.5, **kw) -> None:
        super().__init__(branch, out_channels, shortcut="masked", mask_ratio=mask_ratio, **kw)


class AsymmetricResidual(Residual):
    """PRN asymmetric residual: adds tensors of different channel counts over their overlap."""

    def __init__(self, branch: nn.Module, out_channels: int, **kw) -> None:
        super().__init__(branch, out_channels, shortcut="asym", **kw)
