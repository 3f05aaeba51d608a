"""Computational blocks (paper §3.2 lists Res, ResX, Dense and OSA as what a CSP stage can wrap).

Every block declares ``in_channels`` and ``out_channels``. Residual blocks accept the residual options of
:class:`gradpath.nn.residual.Residual` (``shortcut``, ``mask_ratio``, ``stop_gradient``).
"""
from __future__ import annotations

import torch
from torch import nn

from gradpath.nn.conv import ConvBNAct, make_act
from gradpath.nn.residual import Residual


def res_block(
    chs: int, hidden: int | None = None, act: str = "silu", shortcut: str = "add", **residual_kw
) -> Residual:
    """Darknet/YOLO residual block "Res": 1×1 chs→hidden, 3×3 hidden→chs, + identity (no act after add).

    Shapes: (N, chs, H, W) → (N, chs, H, W). ``hidden`` defaults to chs/2 (Darknet-53's RB(c, c/2)).
    """
    hidden = hidden or chs // 2
    branch = nn.Sequential(ConvBNAct(chs, hidden, 1, act=act), ConvBNAct(hidden, chs, 3, act=act))
    block = Residual(branch, chs, shortcut=shortcut, **residual_kw)
    block.in_channels = chs
    return block


def bottleneck_block(
    in_chs: int,
    width: int,
    out_chs: int,
    stride: int = 1,
    groups: int = 1,
    act: str = "relu",
    shortcut: str = "add",
    **residual_kw,
) -> Residual:
    """ResNet bottleneck: 1×1 in→width, 3×3 width→width (stride, groups), 1×1 width→out (linear), + identity,
    then the activation. With ``groups > 1`` this is the ResNeXt block ("ResX").

    A channel or stride mismatch between input and output needs ``shortcut="asym"`` (darknet form, no
    projection conv) — the plain ``add`` would fail.
    Shapes: (N, in_chs, H, W) → (N, out_chs, H/stride, W/stride).
    """
    branch = nn.Sequential(
        ConvBNAct(in_chs, width, 1, act=act),
        ConvBNAct(width, width, 3, stride, groups=groups, act=act),
        ConvBNAct(width, out_chs, 1, act=None),
    )
    block = Residual(branch, out_chs, shortcut=shortcut, act=make_act(act), **residual_kw)
    block.in_channels = in_chs
    return block


def resx_block(in_chs: int, width: int, out_chs: int, stride: int = 1, groups: int = 32, **kw) -> Residual:
    """ResNeXt block: a bottleneck whose 3×3 is grouped (cardinality ``groups``, default 32)."""
    return bottleneck_block(in_chs, width, out_chs, stride, groups=groups, **kw)


class DenseBlock(nn.Module):
    """DenseNet block: layer i reads cat[x, y1..y(i−1)]; the output is cat[x, y1..yn].

    Each layer is 1×1 (→ ``bottleneck``·growth, if bottleneck) then 3×3 → growth.
    No registered model uses it: it is the DenseNet pattern of Table 1 for the analyzer
    (tests/analysis/test_backends.py checks its gradient paths).
    Shapes: (N, C, H, W) → (N, C + n·growth, H, W).
    """

    def __init__(self, in_chs: int, growth: int, n_layers: int, bottleneck: int = 4, act: str = "silu") -> None:
        super().__init__()
        self.in_channels = in_chs
        layers = []
        c = in_chs
        for _ in range(n_layers):
            seq = []
            if bottleneck:
                seq.append(ConvBNAct(c, bottleneck * growth, 1, act=act))
                seq.append(ConvBNAct(bottleneck * growth, growth, 3, act=act))
            else:
                seq.append(ConvBNAct(c, growth, 3, act=act))
            layers.append(nn.Sequential(*seq))
            c += growth
        self.layers = nn.ModuleList(layers)
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return torch.cat(feats, 1)


class OSABlock(nn.Module):
    """VoVNet one-shot aggregation: n chained 3×3 convs; cat[x, y1..yn] once; 1×1 transition → out_chs
    (the plain deep VoVNet of Table 4, ``vovnet99``, chains these).

    ``transition=False`` leaves the concatenation untransitioned (out = in + n·stage_chs) — the form a
    network-level plan (ELAN) uses to put one transition per stage instead of one per module.
    ``identity=True`` adds the input to the output (VoVNet-v2), requires in_chs == out_chs.
    Shapes: (N, in_chs, H, W) → (N, out_chs, H, W).
    """

    def __init__(
        self,
        in_chs: int,
        stage_chs: int,
        out_chs: int | None = None,
        n_layers: int = 5,
        act: str = "relu",
        transition: bool = True,
        identity: bool = False,
        include_input: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = in_chs
        convs = []
        c = in_chs
        for _ in range(n_layers):
            convs.append(ConvBNAct(c, stage_chs, 3, act=act))
            c = stage_chs
        self.convs = nn.ModuleList(convs)
        self.include_input = include_input
        cat_chs = (in_chs if include_input else 0) + n_layers * stage_chs
        if transition:
            out_chs = out_chs or cat_chs
            self.transition: nn.Module = ConvBNAct(cat_chs, out_chs, 1, act=act)
        else:
            if out_chs not in (None, cat_chs):
                raise ValueError(f"OSABlock without transition outputs {cat_chs} channels, not {out_chs}")
            out_chs = cat_chs
            self.transition = nn.Identity()
        if identity and in_chs != out_chs:
            raise ValueError("OSABlock identity needs in_chs == out_chs")
        self.identity = identity
        self.out_channels = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x] if self.include_input else []
        y = x
        for conv in self.convs:
            y = conv(y)
            feats.append(y)
        out = self.transition(torch.cat(feats, 1))
        return out + x if self.identity else out
