"""YOLOv5-seg (ultralytics v7.0 ``models/segment/yolov5{l,x}-seg.yaml``), the comparison rows of Table 8
(the paper's "r6.2" names the code base; segmentation configs were released with v7.0). docs/reconstructions.md.

Backbone: 6×6 s2 stem, C3 stages (CSP, fusion first), SPPF; PAN neck of C3 stages without residual; the
plain (non-implicit) ``Segment`` head with the v5 anchors. ``width``/``depth`` are YOLOv5's width/depth
multiples: l = (1.0, 1.0), x = (1.25, 1.33).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gradpath.models.detect import ANCHORS_V5, Segment, YOLOSegModel
from gradpath.models.registry import PaperRef, register_model
from gradpath.models.scaling import Scaler
from gradpath.models.yolo_common import C3, SPPF, Lateral, check_detector_scale
from gradpath.nn import ConvBNAct


@dataclass(frozen=True)
class YOLOv5SegConfig:
    num_classes: int = 80
    width: float = 1.0
    depth: float = 1.0
    nm: int = 32
    npr: int = 256
    in_chans: int = 3

    def validate(self) -> None:
        check_detector_scale(self.num_classes, self.width, self.depth)


class YOLOv5Body(nn.Module):
    """CSP-Darknet (C3) + SPPF + PAN; returns (P3, P4, P5) = (256, 512, 1024)·width."""

    def __init__(self, cfg: YOLOv5SegConfig) -> None:
        super().__init__()
        S = Scaler(cfg.width, cfg.depth)
        c, n = S.c, S.n

        def c3(c1: int, c2: int, reps: int, shortcut: bool = True) -> C3:
            return C3(c1, c2, n(reps), shortcut=shortcut, hidden=S.derived(c2 // 2))

        self.stem = ConvBNAct(cfg.in_chans, c(64), 6, 2, p=2)
        self.stage2 = nn.Sequential(ConvBNAct(c(64), c(128), 3, 2), c3(c(128), c(128), 3))
        self.stage3 = nn.Sequential(ConvBNAct(c(128), c(256), 3, 2), c3(c(256), c(256), 6))
        self.stage4 = nn.Sequential(ConvBNAct(c(256), c(512), 3, 2), c3(c(512), c(512), 9))
        self.stage5 = nn.Sequential(ConvBNAct(c(512), c(1024), 3, 2), c3(c(1024), c(1024), 3),
                                    SPPF(c(1024), c(1024), hidden=S.derived(c(1024) // 2)))
        self.lat4 = Lateral(c(1024), c(512), c(512), None)
        self.c3_t4 = c3(self.lat4.out_channels, c(512), 3, shortcut=False)
        self.lat3 = Lateral(c(512), c(256), c(256), None)
        self.c3_p3 = c3(self.lat3.out_channels, c(256), 3, shortcut=False)
        self.down4 = ConvBNAct(c(256), c(256), 3, 2)
        self.c3_p4 = c3(c(256) + c(256), c(512), 3, shortcut=False)
        self.down5 = ConvBNAct(c(512), c(512), 3, 2)
        self.c3_p5 = c3(c(512) + c(512), c(1024), 3, shortcut=False)
        self.out_channels = (c(256), c(512), c(1024))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p3 = self.stage3(self.stage2(self.stem(x)))
        p4 = self.stage4(p3)
        p5 = self.stage5(p4)
        r5, cat4 = self.lat4(p5, p4)
        r4, cat3 = self.lat3(self.c3_t4(cat4), p3)
        o3 = self.c3_p3(cat3)
        o4 = self.c3_p4(torch.cat([self.down4(o3), r4], 1))
        o5 = self.c3_p5(torch.cat([self.down5(o4), r5], 1))
        return o3, o4, o5


def build_yolov5_seg(cfg: YOLOv5SegConfig) -> YOLOSegModel:
    """YOLOv5-seg: body + Segment (no implicit layers), Proto width npr·width."""
    cfg.validate()
    body = YOLOv5Body(cfg)
    npr = Scaler(cfg.width).c(cfg.npr)
    head = Segment(cfg.num_classes, ANCHORS_V5, body.out_channels, (8, 16, 32), cfg.nm, npr, implicit=False)
    return YOLOSegModel(body, head, cfg.in_chans)


register_model("yolov5l-seg", YOLOv5SegConfig(), default_imgsz=640, task="segment",
               paper=PaperRef("8", 640, 147.7, 47.9, "fused", {"ap_box": 49.1, "ap_mask": 40.0}),
               description="YOLOv5l-seg (v7.0 layout; Table 8 comparison)")(build_yolov5_seg)
register_model("yolov5x-seg", YOLOv5SegConfig(width=1.25, depth=1.33), default_imgsz=640, task="segment",
               paper=PaperRef("8", 640, 265.7, 88.8, "fused", {"ap_box": 50.9, "ap_mask": 41.4}),
               description="YOLOv5x-seg (v7.0 layout; Table 8 comparison)")(build_yolov5_seg)
