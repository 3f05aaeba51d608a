"""ELAN block — "stack in computational block" (paper §2.4, Fig. 6; YOLOv7 §3.1).

Two 1×1 entries of width ``entry_chs`` (e): ``p`` (crosses the block) and ``q`` (enters the stack). On ``q``,
``n_blocks`` computational blocks of ``convs_per_block`` chained 3×3 convs of width ``block_chs`` (w); the
output of every computational block is aggregated with q and p, and one 1×1 transition makes the output:

    cat[b_n, …, b_1, q, p] → 1×1 → out_chs          (the order YOLOv7 uses)

Every layer's shortest gradient path stays ≤ convs_per_block + 2 however many blocks are stacked, which is the
network-level point of the paper. ``block_chs`` defaults to e·s/2 (s = convs_per_block), the rule that
reproduces Table 7 (docs/reconstructions.md): s=2 is YOLOv7's backbone ELAN, s=1 its neck ELAN.
``aggregate`` selects which block outputs (1-based) enter the concat; default all.

``cross_bypass=True`` is the CSP form of the block (a CSP stage with fusion last, paper §2.3): the cross entry p
skips the transition and is concatenated after it, so the gradient of p is not mixed by the 1×1:

    cat[ 1×1(cat[b_n, …, b_1, q]) → out_chs − e , p ]

Shapes: (N, in_chs, H, W) → (N, out_chs, H, W).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from gradpath.errors import GradpathError
from gradpath.nn.conv import ConvBNAct


class ELAN(nn.Module):
    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        entry_chs: int,
        n_blocks: int = 2,
        convs_per_block: int = 2,
        block_chs: int | None = None,
        aggregate: Sequence[int] | None = None,
        act: str = "silu",
        cross_bypass: bool = False,
    ) -> None:
        super().__init__()
        if n_blocks < 1 or convs_per_block < 1:
            raise GradpathError("ELAN needs n_blocks >= 1 and convs_per_block >= 1")
        if cross_bypass and out_chs <= entry_chs:
            raise GradpathError(f"ELAN with cross_bypass needs out_chs > entry_chs, got {out_chs} <= {entry_chs}")
        e = entry_chs
        w = block_chs or max(1, e * convs_per_block // 2)
        self.in_channels = in_chs
        self.out_channels = out_chs
        self.convs_per_block = convs_per_block
        self.cross_bypass = cross_bypass
        self.aggregate = tuple(aggregate) if aggregate is not None else tuple(range(1, n_blocks + 1))
        if not all(1 <= i <= n_blocks for i in self.aggregate):
            raise GradpathError(f"ELAN aggregate indices must be in 1..{n_blocks}, got {self.aggregate}")
        self.cross = ConvBNAct(in_chs, e, 1, act=act)  # p
        self.entry = ConvBNAct(in_chs, e, 1, act=act)  # q
        blocks, c = [], e
        for _ in range(n_blocks):
            convs = []
            for _ in range(convs_per_block):
                convs.append(ConvBNAct(c, w, 3, act=act))
                c = w
            blocks.append(nn.Sequential(*convs))
        self.blocks = nn.ModuleList(blocks)
        cat_chs = e + len(self.aggregate) * w
        if cross_bypass:
            self.transition = ConvBNAct(cat_chs, out_chs - e, 1, act=act)
        else:
            self.transition = ConvBNAct(cat_chs + e, out_chs, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.cross(x)
        y = q = self.entry(x)
        outs = []
        for blk in self.blocks:
            y = blk(y)
            outs.append(y)
        feats = [outs[i - 1] for i in sorted(self.aggregate, reverse=True)] + [q]
        if self.cross_bypass:
            return torch.cat([self.transition(torch.cat(feats, 1)), p], 1)
        return self.transition(torch.cat(feats + [p], 1))
