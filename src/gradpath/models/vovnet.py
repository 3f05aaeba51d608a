"""Deep VoVNet (99 conv layers) with a transition after every OSA module, planned with ELAN, and with
ELAN + CSP — Table 4. LABELLED RECONSTRUCTIONS: the paper publishes neither the network nor its detector wrapper
(docs/reconstructions.md), so these do not reproduce 253.4G / 236.5G exactly and are registered as
reconstructions; ``gradpath reproduce flops --table 4`` prints our figures against the paper's and
tests/test_zoo.py pins them.

What we build: the yolov7-seg / YOLOR-ELAN skeleton of :mod:`gradpath.models.yolor` (stem, MP-down, SPPCSPC,
neck with ELAN-{·,1}s, ISegment) whose **four backbone stages** follow VoVNet-99's plan, **1/3/9/3 OSA modules
of 5 chained 3×3 convs** of width e (the ELAN entry width of the stage, 64/128/256/256), in one of three plans
(``strategy``):

- ``plain`` (``vovnet99``): the deep VoVNet itself, a 1×1 transition after *every* OSA module
  (cat[x, y1 … y5] → 1×1 → stage width) — the network the paper says fails to converge. The paper gives no
  figures for it.
- ``elan`` (``vovnet99-elan``): the ELAN plan (paper §2.4 / §3.3): the OSA modules lose their transitions,
  every module is one computational block of an ELAN whose outputs are aggregated with the entries q and p, and
  one 1×1 transition per *stage* restores the stage width (cat[b_m … b_1, q, p] → 1×1), i.e.
  ``nn.ELAN(n_blocks=m, convs_per_block=5, block_chs=e)``.
- ``elan`` with ``csp=True`` (``vovnet99-elan-csp``, "+ CSP"): the ELAN stage as a CSP stage with fusion last —
  the transition covers only [b_m … b_1, q] (→ out − e channels) and the cross entry p is concatenated after it
  (``nn.ELAN(cross_bypass=True)``).

Differences from the paper that we know of: VoVNet-99's own stem (3 convs), stage widths 128/160/192/224 →
256/512/768/1024, ceil-mode max-pool downsampling and eSE attention are replaced by the yolov7-seg skeleton's;
the paper's CSP split and neck are unknown. Clue we could not exploit: 253.4 − 236.5 = 16.9G equals the
{2,1}s → {1,1}s backbone step of YOLOR-ELAN (16.87G) and also, within 0.1G, our four stage transitions (16.96G).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from gradpath.errors import GradpathError, check_choice
from gradpath.models.detect import ANCHORS_YOLOR, Segment, YOLOSegModel
from gradpath.models.registry import PaperRef, register_model
from gradpath.models.scaling import Scaler
from gradpath.models.yolo_common import check_detector_scale
from gradpath.models.yolor import ELANBody, YOLORConfig
from gradpath.nn import ELAN, OSABlock

STRATEGIES = ("plain", "elan")


@dataclass(frozen=True)
class VoVNetConfig:
    strategy: str = "elan"  # plain: a transition per OSA module; elan: one per stage
    csp: bool = False  # elan only: the cross entry bypasses the stage transition (CSP, fusion last)
    stage_blocks: tuple[int, int, int, int] = (1, 3, 9, 3)  # VoVNet-99 OSA modules per stage
    convs_per_block: int = 5  # 3×3 convs per OSA module
    num_classes: int = 80
    width: float = 1.0
    depth: float = 1.0
    nm: int = 32
    npr: int = 256
    implicit: bool = True
    in_chans: int = 3

    def validate(self) -> None:
        check_choice("strategy", self.strategy, STRATEGIES)
        if self.csp and self.strategy != "elan":
            raise GradpathError("csp=True needs strategy='elan' (the CSP split acts on the ELAN stage)")
        if len(tuple(self.stage_blocks)) != 4 or min(self.stage_blocks) < 1 or self.convs_per_block < 1:
            raise GradpathError("stage_blocks must be 4 positive ints and convs_per_block >= 1")
        check_detector_scale(self.num_classes, self.width, self.depth)


class OSAStage(nn.Sequential):
    """``n`` OSA modules in a row, each with its own 1×1 transition to ``out_chs`` (plain VoVNet).
    Shapes: (N, in_chs, H, W) → (N, out_chs, H, W)."""

    def __init__(self, in_chs: int, stage_chs: int, out_chs: int, n: int, convs: int) -> None:
        super().__init__(*[OSABlock(in_chs if i == 0 else out_chs, stage_chs, out_chs, n_layers=convs, act="silu")
                           for i in range(n)])
        self.in_channels, self.out_channels = in_chs, out_chs


def build_vovnet(cfg: VoVNetConfig) -> YOLOSegModel:
    """Deep-VoVNet detector, plain, ELAN or ELAN-CSP (reconstruction; see module docstring)."""
    cfg.validate()
    S = Scaler(cfg.width, cfg.depth)

    def stage(i: int, cin: int, e: int, out: int) -> nn.Module:
        n = S.n(cfg.stage_blocks[i])
        if cfg.strategy == "plain":
            return OSAStage(cin, e, out, n, cfg.convs_per_block)
        return ELAN(cin, out, entry_chs=e, n_blocks=n, convs_per_block=cfg.convs_per_block, block_chs=e,
                    cross_bypass=cfg.csp)

    body = ELANBody(YOLORConfig(strategy="elan", width=cfg.width, depth=cfg.depth, in_chans=cfg.in_chans), stage)
    head = Segment(cfg.num_classes, ANCHORS_YOLOR, body.out_channels, (8, 16, 32), cfg.nm, S.c(cfg.npr),
                   cfg.implicit)
    return YOLOSegModel(body, head, cfg.in_chans)


_COMMON = ("VoVNet-99 stage plan (1/3/9/3 OSA modules x 5 convs) on the yolov7-seg skeleton; no public "
           "definition (docs/reconstructions.md)")
register_model(
    "vovnet99", VoVNetConfig(strategy="plain"), default_imgsz=640, task="segment",
    paper=PaperRef("4", 640, None, None, "fused", reconstruction=True,
                   note=f"{_COMMON}; a transition after every OSA module. The paper gives no "
                        "figures: it says this network fails to converge"),
    description="Deep VoVNet-99, a transition per OSA module (Table 4's plain baseline; reconstruction)",
)(build_vovnet)
register_model(
    "vovnet99-elan", VoVNetConfig(), default_imgsz=640, task="segment",
    paper=PaperRef("4", 640, 253.4, None, "fused", {"ap_box": 53.3, "ap_mask": 42.9}, reconstruction=True,
                   note=f"{_COMMON}; one transition per stage (ELAN)"),
    description="Deep VoVNet-99 + ELAN (Table 4; reconstruction)",
)(build_vovnet)
register_model(
    "vovnet99-elan-csp", VoVNetConfig(csp=True), default_imgsz=640, task="segment",
    paper=PaperRef("4", 640, 236.5, None, "fused", {"ap_box": 53.4, "ap_mask": 42.9}, reconstruction=True,
                   note=f"{_COMMON}; ELAN stages with CSP fusion last (the paper's CSP split is "
                        "unpublished)"),
    description="Deep VoVNet-99 + ELAN + CSP (Table 4; reconstruction)",
)(build_vovnet)
