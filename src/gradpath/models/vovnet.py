"""Deep VoVNet (99 conv layers) planned with ELAN, and with ELAN + CSP — Table 4. LABELLED RECONSTRUCTIONS:
the paper publishes neither the network nor its detector wrapper (ARCHITECTURES.md §2.6), so these do not
reproduce 253.4G / 236.5G exactly and are registered with ``must_match=False``.

What we build (paper §2.4 / §3.3: a VoVNet whose OSA modules lose their per-module transition and keep one
transition per stage — the ELAN plan; the plain VoVNet "fails to converge"):

- The yolov7-seg / YOLOR-ELAN skeleton of :mod:`gradpath.models.yolor` (stem, MP-down, SPPCSPC, neck with
  ELAN-{·,1}s, ISegment); only the **four backbone ELAN modules** change.
- Each backbone stage follows VoVNet-99's plan: **1/3/9/3 OSA modules of 5 chained 3×3 convs**. In ELAN form
  every OSA module is one computational block (5 convs, width = the entry width e = 64/128/256/256), its output
  is aggregated with the entries q and p, and one 1×1 transition per *stage* restores the stage width
  (cat [b_m … b_1, q, p] → 1×1), i.e. ``nn.ELAN(n_blocks=m, convs_per_block=5, block_chs=e)``.
- ``csp=True`` ("+ CSP"): the stage becomes a CSP stage with fusion last — the transition covers only the
  computational part [b_m … b_1, q] (→ out − e channels) and the cross part p is concatenated after it.

Differences from the paper that we know of: VoVNet-99's own stem (3 convs), stage widths 128/160/192/224 →
256/512/768/1024, ceil-mode max-pool downsampling and eSE attention are replaced by the yolov7-seg skeleton's;
the paper's CSP split and neck are unknown. Measured: 254.54G (+0.45% vs 253.4G), 72.76M params; + CSP 248.24G
(+4.96% vs 236.5G), 71.16M. Clue we could not exploit: 253.4 − 236.5 = 16.9G equals the {2,1}s → {1,1}s
backbone step of YOLOR-ELAN (16.87G) and also, within 0.1G, our four stage transitions (16.96G).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gradpath.errors import GradpathError
from gradpath.models.detect import ANCHORS_YOLOR, Segment, YOLOSegModel
from gradpath.models.registry import PaperRef, register_model
from gradpath.models.yolo_common import check_detector_scale, Scaler
from gradpath.models.yolor import ELANBody, YOLORConfig
from gradpath.nn import ELAN, ConvBNAct


@dataclass(frozen=True)
class VoVNetELANConfig:
    csp: bool = False
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
        if len(tuple(self.stage_blocks)) != 4 or min(self.stage_blocks) < 1 or self.convs_per_block < 1:
            raise GradpathError("stage_blocks must be 4 positive ints and convs_per_block >= 1")
        check_detector_scale(self.num_classes, self.width, self.depth)


class CSPELANStage(nn.Module):
    """ELAN stage with CSP fusion last: p (1×1 cin→e) crosses; q (1×1 cin→e) → n blocks of ``convs`` 3×3
    (width w); transition 1×1 on cat[b_n … b_1, q] → out − e; output cat[transition, p].
    Shapes: (N, cin, H, W) → (N, out, H, W)."""

    def __init__(self, cin: int, out: int, e: int, n_blocks: int, convs: int, w: int) -> None:
        super().__init__()
        if out <= e:
            raise GradpathError(f"CSPELANStage needs out > e, got out={out}, e={e}")
        self.cross = ConvBNAct(cin, e, 1)
        self.entry = ConvBNAct(cin, e, 1)
        blocks, c = [], e
        for _ in range(n_blocks):
            convs_ = []
            for _ in range(convs):
                convs_.append(ConvBNAct(c, w, 3))
                c = w
            blocks.append(nn.Sequential(*convs_))
        self.blocks = nn.ModuleList(blocks)
        self.transition = ConvBNAct(e + n_blocks * w, out - e, 1)
        self.in_channels, self.out_channels = cin, out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = q = self.entry(x)
        outs = []
        for blk in self.blocks:
            y = blk(y)
            outs.append(y)
        return torch.cat([self.transition(torch.cat(outs[::-1] + [q], 1)), self.cross(x)], 1)


def build_vovnet_elan(cfg: VoVNetELANConfig) -> YOLOSegModel:
    """Deep-VoVNet-ELAN(-CSP) detector (reconstruction; see module docstring)."""
    cfg.validate()
    body = ELANBody(YOLORConfig(strategy="elan", width=cfg.width, depth=cfg.depth, in_chans=cfg.in_chans))
    S = Scaler(cfg.width, cfg.depth)
    c = S.c
    plan = (("elan2", 128, 64, 256), ("elan3", 256, 128, 512), ("elan4", 512, 256, 1024), ("elan5", 1024, 256, 1024))
    for (name, cin, e, out), m in zip(plan, cfg.stage_blocks):
        n = S.n(m)
        if cfg.csp:
            stage: nn.Module = CSPELANStage(c(cin), c(out), c(e), n, cfg.convs_per_block, c(e))
        else:
            stage = ELAN(c(cin), c(out), entry_chs=c(e), n_blocks=n, convs_per_block=cfg.convs_per_block,
                         block_chs=c(e))
        setattr(body, name, stage)
    npr = S.c(cfg.npr)
    head = Segment(cfg.num_classes, ANCHORS_YOLOR, body.out_channels, (8, 16, 32), cfg.nm, npr, cfg.implicit)
    return YOLOSegModel(body, head, cfg.in_chans)


register_model(
    "vovnet99-elan", VoVNetELANConfig(), default_imgsz=640, task="segment",
    paper=PaperRef("4", 640, 253.4, None, "fused", {"ap_box": 53.3, "ap_mask": 42.9}, must_match=False,
                   note="reconstruction: VoVNet-99 stage plan (1/3/9/3 x 5 convs) as ELAN stages on the "
                        "yolov7-seg skeleton; 254.54G (+0.45%)"),
    description="Deep VoVNet-99 + ELAN (Table 4; reconstruction)",
)(build_vovnet_elan)
register_model(
    "vovnet99-elan-csp", VoVNetELANConfig(csp=True), default_imgsz=640, task="segment",
    paper=PaperRef("4", 640, 236.5, None, "fused", {"ap_box": 53.4, "ap_mask": 42.9}, must_match=False,
                   note="reconstruction: as vovnet99-elan with CSP fusion-last stages; 248.24G (+4.96%); the "
                        "paper's CSP split is unpublished"),
    description="Deep VoVNet-99 + ELAN + CSP (Table 4; reconstruction)",
)(build_vovnet_elan)
