"""CSP stage (paper §2.3 / CSPNet): split the stage input in two, run the computational block on one part,
let the other cross the whole stage, then merge.

Layout (cat order is (path, cross), as the public CSPC/BottleneckCSPA blocks use):

    x ─ 1×1 → path_chs ─ blocks ─ [1×1 transition]─┐
    └ 1×1 → cross_chs ─────────────────────────────cat─ [1×1 → out_chs]

Gradient-flow truncation (``fusion``):
- ``"fusion"``: transition → concat → transition (CSPC; YOLOR-CSP)
- ``"first"``:  concat → transition (fusion first; no transition on the path)
- ``"last"``:   transition → concat (fusion last; the stage outputs the concatenation)
- ``"none"``:   split → concat, no transition anywhere (Table 6's "no fusion", docs/reconstructions.md)

For ``last``/``none`` the output width is path + cross, so ``out_chs`` must equal that.
``split`` (default 0.5) is the share of ``out_chs`` given to the computational path when ``path_chs`` and
``cross_chs`` are not set explicitly.
Shapes: (N, in_chs, H, W) → (N, out_chs, H, W).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from gradpath.errors import GradpathError, check_choice
from gradpath.nn.conv import ConvBNAct

FUSIONS = ("fusion", "first", "last", "none")


class CSPStage(nn.Module):
    """A cross-stage-partial stage over any computational block.

    Args:
        in_chs, out_chs: stage input/output channels.
        make_block: ``make_block(chs_in, index) -> nn.Module`` with an ``out_channels`` attribute; called ``n``
            times, each block receiving the previous one's output.
        n: number of blocks.
        fusion: one of ``fusion``, ``first``, ``last``, ``none``.
        split: path share of ``out_chs`` (ignored when ``path_chs``/``cross_chs`` are given).
        act: activation of the transitions; ``split_act`` that of the two 1×1 split convs (default ``act``).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        make_block: Callable[[int, int], nn.Module],
        n: int = 1,
        fusion: str = "fusion",
        split: float = 0.5,
        path_chs: int | None = None,
        cross_chs: int | None = None,
        act: str = "silu",
        split_act: str | None = None,
    ) -> None:
        super().__init__()
        check_choice("fusion", fusion, FUSIONS)
        if not 0.0 < split < 1.0:
            raise GradpathError(f"split must be in (0, 1), got {split}")
        split_act = act if split_act is None else split_act
        path_chs = path_chs or int(round(out_chs * split))
        cross_chs = cross_chs or out_chs - path_chs
        self.in_channels = in_chs
        self.fusion = fusion
        self.split_path = ConvBNAct(in_chs, path_chs, 1, act=split_act)
        self.split_cross = ConvBNAct(in_chs, cross_chs, 1, act=split_act)
        blocks, c = [], path_chs
        for i in range(n):
            blk = make_block(c, i)
            blocks.append(blk)
            c = blk.out_channels
        self.blocks = nn.Sequential(*blocks)
        self.transition_path: nn.Module = (
            ConvBNAct(c, c, 1, act=act) if fusion in ("fusion", "last") else nn.Identity()
        )
        cat_chs = c + cross_chs
        if fusion in ("fusion", "first"):
            self.transition_out: nn.Module = ConvBNAct(cat_chs, out_chs, 1, act=act)
        else:
            if out_chs != cat_chs:
                raise GradpathError(
                    f"CSPStage fusion={fusion!r} outputs path+cross = {cat_chs} channels, but out_chs={out_chs}"
                )
            self.transition_out = nn.Identity()
        self.out_channels = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path = self.transition_path(self.blocks(self.split_path(x)))
        return self.transition_out(torch.cat([path, self.split_cross(x)], 1))

    def extra_repr(self) -> str:
        return f"fusion={self.fusion}"
