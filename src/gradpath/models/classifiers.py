"""Table 2's ImageNet classifiers in their darknet form (WongKinYiu/CrossStagePartialNetworks cfgs;
docs/reconstructions.md#classifiers): Darknet-53, ResNet-50, ResNeXt-50 and their CSP versions (paper §3.2,
stage level).

Darknet conventions kept because the paper's counts depend on them: leaky ReLU 0.1; ResNet/ResNeXt shortcuts
have **no projection conv** — where channels or stride differ the identity is added over the overlapping
channels, strided (``Residual(shortcut="asym")``, darknet's ``[shortcut]``); global average pooling *before* the
1000-way classifier (needed for ResNet-50's published 9.74G; the resnet50.cfg itself pools after it).
Params in Table 2 are conv/linear weights only (``params_weights``); FLOPs at 256×256 (docs/counting.md).
``width``/``depth`` make CPU-sized versions (e.g. 0.25 / 0.34); the input may be any multiple of 32 (stride 32,
then global average pooling), 64–128 px included.
NOTE: darknet's 1×1 classifier conv is a ``nn.Linear`` here (same weights and FLOPs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from gradpath.errors import GradpathError, check_choice
from gradpath.models.heads import ClassifierHead
from gradpath.models.registry import PaperRef, register_model
from gradpath.models.scaling import Scaler, check_scale
from gradpath.nn import FUSIONS, ConvBNAct, CSPStage, bottleneck_block, res_block
from gradpath.nn.residual import check_stop_gradient

ARCHS = ("darknet53", "resnet50", "resnext50")


@dataclass(frozen=True)
class ClassifierConfig:
    """``width``/``depth`` scale channels and repeats as the detectors' do (:mod:`gradpath.models.scaling`);
    at 1.0 every count is Table 2's."""

    arch: str = "darknet53"
    csp: bool = False
    num_classes: int = 1000
    act: str = "leaky"
    fusion: str = "fusion"  # CSP stages only
    stop_gradient: str | None = None
    width: float = 1.0
    depth: float = 1.0
    in_chans: int = 3

    def validate(self) -> None:
        check_choice("arch", self.arch, ARCHS)
        if self.num_classes < 1:
            raise GradpathError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.in_chans < 1:
            raise GradpathError(f"in_chans must be >= 1, got {self.in_chans}")
        check_choice("fusion", self.fusion, FUSIONS)
        if self.fusion != "fusion" and not self.csp:
            raise GradpathError("fusion applies to CSP classifiers only (csp=True)")
        check_stop_gradient(self.stop_gradient)
        check_scale(self.width, self.depth)


def _darknet53(cfg: ClassifierConfig) -> tuple[list[nn.Module], int]:
    act, sg = cfg.act, cfg.stop_gradient
    S = Scaler(cfg.width, cfg.depth)
    prev = S.c(32)
    layers: list[nn.Module] = [ConvBNAct(cfg.in_chans, prev, 3, act=act)]
    for i, (cout, n) in enumerate(((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4))):
        co, reps, half = S.c(cout), S.n(n), S.derived(S.c(cout) // 2)
        layers.append(ConvBNAct(prev, co, 3, 2, act=act))
        if not cfg.csp:
            layers += [res_block(co, half, act=act, stop_gradient=sg) for _ in range(reps)]
        else:
            # stage 1: path/cross of full width, RB(64, 32); stages 2–5: half width, RB(C/2, C/2) (§3).
            h = co if i == 0 else half

            def block(c: int, j: int, hidden: int = half) -> nn.Module:
                return res_block(c, hidden, act=act, stop_gradient=sg)

            layers.append(CSPStage(co, co, block, reps, fusion=cfg.fusion, path_chs=h, cross_chs=h, act=act))
        prev = co
    return layers, prev


def _resnet(cfg: ClassifierConfig) -> tuple[list[nn.Module], int]:
    act, sg = cfg.act, cfg.stop_gradient
    next_ = cfg.arch == "resnext50"
    groups = 32 if next_ else 1
    S = Scaler(cfg.width, cfg.depth)
    c = S.c

    def g(chs: int) -> int:
        """A scaled width that a grouped conv reads or writes: a multiple of the groups too."""
        return S.derived(c(chs), math.lcm(8, groups))

    layers: list[nn.Module] = [ConvBNAct(cfg.in_chans, c(64), 7, 2, act=act), nn.MaxPool2d(2, 2)]
    ch = c(64)
    if not cfg.csp:
        for i, (base, n) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
            width, out = g(2 * base if next_ else base), c(4 * base)
            for j in range(S.n(n)):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(bottleneck_block(ch, width, out, stride, groups=groups, act=act, shortcut="asym",
                                               stop_gradient=sg))
                ch = out
        return layers, ch
    # CSP: stage 1 (64 in) and stages 2–4 preceded by a 3×3 s2 (grouped for ResNeXt) (docs/reconstructions.md).
    # (stage input, path width, stage output, blocks)
    plans = ((64, 128, 128, 3), (128, 256, 256, 3), (256, 512, 512, 5), (512, 1024, 1024, 2)) if not next_ else \
        ((64, 128, 256, 3), (256, 256, 512, 3), (512, 512, 1024, 5), (1024, 1024, 2048, 2))
    for i, (cin, path, out, n) in enumerate(plans):
        cin, out = (g(cin) if i > 0 else c(cin)), g(out)
        if i > 0:
            layers.append(ConvBNAct(ch, cin, 3, 2, groups=groups, act=act))
        if next_:
            width, bout = (g(128), g(128)) if i == 0 else (g(path), g(path))
        else:
            width, bout = (c(64), c(128)) if i == 0 else (cin, c(path))
        path_chs = c(64) if i == 0 else g(path)
        cross = c(128) if i == 0 else g(path)
        split_act = None if next_ else ("linear" if i in (1, 2) else act)

        def block(chs: int, j: int, width: int = width, bout: int = bout) -> nn.Module:
            return bottleneck_block(chs, width, bout, groups=groups, act=act, shortcut="asym", stop_gradient=sg)

        layers.append(CSPStage(cin, out, block, S.n(n), fusion=cfg.fusion, path_chs=path_chs, cross_chs=cross,
                               act=act, split_act=split_act))
        ch = out
    return layers, ch


class DarknetClassifier(nn.Module):
    """Features (stride 32) then GAP + linear. Shapes: (N, in_chans, H, W) → (N, num_classes)."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        cfg.validate()
        layers, c = _darknet53(cfg) if cfg.arch == "darknet53" else _resnet(cfg)
        self.num_classes = cfg.num_classes
        self.in_chans = cfg.in_chans
        self.features = nn.Sequential(*layers)
        self.head = ClassifierHead(c, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


_T2 = [
    ("darknet53", "darknet53", False, 18.57, 41.57, 77.2, "Darknet-53"),
    ("csp-darknet53", "darknet53", True, 13.07, 27.61, 77.2, "CSPDarknet-53"),
    ("resnet50", "resnet50", False, 9.74, 22.73, 75.8, "ResNet-50 (darknet form: no projection shortcuts)"),
    ("csp-resnet50", "resnet50", True, 8.97, 21.57, 76.6, "CSPResNet-50"),
    ("resnext50", "resnext50", False, 10.11, 22.19, 77.8, "ResNeXt-50 (darknet form: no projection shortcuts)"),
    ("csp-resnext50", "resnext50", True, 7.93, 20.50, 77.9, "CSPResNeXt-50"),
]
for _name, _arch, _csp, _gf, _pm, _top1, _desc in _T2:
    register_model(
        _name, ClassifierConfig(arch=_arch, csp=_csp), default_imgsz=256, task="classify",
        paper=PaperRef("2", 256, _gf, _pm, "weights", {"top1": _top1}),
        description=f"{_desc}, ImageNet (Table 2)",
    )(DarknetClassifier)
