"""Small reference classifiers: one topology, four gradient-path strategies.

Not paper models; they exist so every part of the chain (registry, profiler, analyzer, training) can be
exercised end to end in seconds, and so the strategies can be compared on equal footing:

- ``res``:  darknet residual blocks (the baseline topology)
- ``prn``:  the same blocks with a masked residual on half of the channels (layer level, PRN)
- ``csp``:  each stage a CSP stage over the same blocks (stage level, CSPNet; ``fusion`` selects the variant)
- ``elan``: each stage one ELAN block (network level)
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from gradpath.errors import GradpathError, check_choice
from gradpath.models.heads import ClassifierHead
from gradpath.models.registry import register_model
from gradpath.nn import ELAN, FUSIONS, ConvBNAct, CSPStage, res_block

STRATEGIES = ("res", "prn", "csp", "elan")


@dataclass(frozen=True)
class TinyNetConfig:
    strategy: str = "res"
    widths: tuple[int, ...] = (16, 32, 64)
    depths: tuple[int, ...] = (1, 2, 2)
    num_classes: int = 10
    in_chans: int = 3
    act: str = "silu"
    fusion: str = "fusion"
    mask_ratio: float = 0.5
    stop_gradient: str | None = None

    def validate(self) -> None:
        check_choice("strategy", self.strategy, STRATEGIES)
        check_choice("fusion", self.fusion, FUSIONS)
        if len(self.widths) != len(self.depths) or not self.widths:
            raise GradpathError("widths and depths must be non-empty and of equal length")
        if self.num_classes < 1:
            raise GradpathError(f"num_classes must be >= 1, got {self.num_classes}")


class TinyNet(nn.Module):
    """Stem 3×3 s2, then per stage a 3×3 s2 downsample and ``depth`` blocks, then GAP + linear.

    Shapes: (N, 3, H, W) → (N, num_classes).
    """

    def __init__(self, cfg: TinyNetConfig) -> None:
        super().__init__()
        cfg.validate()
        self.num_classes = cfg.num_classes
        self.in_chans = cfg.in_chans
        c = cfg.widths[0] // 2
        layers: list[nn.Module] = [ConvBNAct(cfg.in_chans, c, 3, 2, act=cfg.act)]
        for w, d in zip(cfg.widths, cfg.depths):
            layers.append(ConvBNAct(c, w, 3, 2, act=cfg.act))
            layers.append(self._stage(cfg, w, d))
            c = w
        self.features = nn.Sequential(*layers)
        self.head = ClassifierHead(c, cfg.num_classes)

    @staticmethod
    def _stage(cfg: TinyNetConfig, w: int, d: int) -> nn.Module:
        res_kw = dict(act=cfg.act, stop_gradient=cfg.stop_gradient)
        if cfg.strategy in ("res", "prn"):
            shortcut = "masked" if cfg.strategy == "prn" else "add"
            return nn.Sequential(
                *[res_block(w, shortcut=shortcut, mask_ratio=cfg.mask_ratio, **res_kw) for _ in range(d)]
            )
        if cfg.strategy == "csp":
            return CSPStage(w, w, lambda c, i: res_block(c, c, **res_kw), n=d, fusion=cfg.fusion, act=cfg.act)
        return ELAN(w, w, entry_chs=w // 2, n_blocks=max(d, 1), convs_per_block=2, act=cfg.act)

    def forward(self, x):
        return self.head(self.features(x))


for _s in STRATEGIES:
    register_model(f"tiny-{_s}", TinyNetConfig(strategy=_s), default_imgsz=64,
                   description=f"small reference classifier, {_s} strategy")(TinyNet)
