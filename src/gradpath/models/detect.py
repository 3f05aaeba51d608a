"""The segmentation decoder every YOLO-family model of the paper ends in (Tables 3–8): YOLOv5-v7.0
``Segment`` + ``Proto``, with YOLOR's implicit layers for the YOLOR models (u7's ``ISegment``).

The detector interface (relied on by the data and segment-task code): ``model(x)`` with x (B, 3, S, S) in
[0, 1], S % 32 == 0, returns ``(feats, proto)`` in training mode — ``feats[i]`` raw (B, na, H_i, W_i, no) —
and ``(pred, proto)`` in eval mode — ``pred`` (B, Σ na·H_i·W_i, no) decoded to input pixels (cx, cy, w, h,
obj, classes…, coefs). ``proto`` is (B, nm, S/4, S/4). Tensors only, so the eval model exports to ONNX /
TorchScript.

Implicit layers (docs/reconstructions.md#isegment): ImplicitA(C_i) is added to each level's input before its
output conv, exactly as u7's ISegment; the Proto reads the raw P3. u7 also *creates* ImplicitM of size
na·(5+nc) per level but never applies it (dead parameters). NOTE deviation: we apply it, as YOLOR's IDetect
does, scaling the box/objectness/class outputs of every anchor (the mask coefficients are left unscaled, which is
what its size implies). The parameter count is therefore identical to u7's (the paper's count) and every
parameter trains.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from gradpath.nn import ConvBNAct
from gradpath.nn.implicit import ImplicitA, ImplicitM

# Anchors in pixels (YOLOv5 and YOLOR/YOLOv7 sets). They change neither FLOPs nor parameters.
ANCHORS_V5 = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))
ANCHORS_YOLOR = ((12, 16, 19, 36, 40, 28), (36, 75, 76, 55, 72, 146), (142, 110, 192, 243, 459, 401))


class Proto(nn.Module):
    """Mask prototypes (YOLACT-style, as YOLOv5-seg): 3×3 c1→c_, nearest ×2, 3×3 c_→c_, 1×1 c_→nm; all
    Conv+BN+SiLU. Shapes: (N, c1, H, W) → (N, nm, 2H, 2W) — stride 4 when fed P3."""

    def __init__(self, c1: int, c_: int = 256, c2: int = 32) -> None:
        super().__init__()
        self.cv1 = ConvBNAct(c1, c_, 3)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.cv2 = ConvBNAct(c_, c_, 3)
        self.cv3 = ConvBNAct(c_, c2, 1)
        self.out_channels = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(self.cv2(self.upsample(self.cv1(x))))


class Segment(nn.Module):
    """YOLOv5 anchor-based instance-segmentation head (see module docstring for the I/O contract).

    Args:
        num_classes: classes (80 for the paper's COCO figures).
        anchors: per level, a flat (w0, h0, w1, h1, …) tuple in pixels.
        ch: channels of the P3, P4, P5 inputs.
        strides: the levels' strides.
        nm: mask prototypes (coefficients per anchor); npr: Proto width.
        implicit: YOLOR ImplicitA/ImplicitM (ISegment) instead of the plain Segment.
    """

    def __init__(
        self,
        num_classes: int,
        anchors: Sequence[Sequence[float]],
        ch: Sequence[int],
        strides: Sequence[int] = (8, 16, 32),
        nm: int = 32,
        npr: int = 256,
        implicit: bool = False,
    ) -> None:
        super().__init__()
        self.nc = self.num_classes = num_classes
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        self.nm = nm
        self.no = 5 + num_classes + nm
        if len(ch) != self.nl or len(strides) != self.nl:
            raise ValueError(f"Segment: {self.nl} anchor levels but ch={list(ch)}, strides={list(strides)}")
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32).view(self.nl, self.na, 2))
        self.register_buffer("stride", torch.tensor(strides, dtype=torch.float32))
        self.strides = tuple(int(s) for s in strides)
        self.m = nn.ModuleList(nn.Conv2d(c, self.na * self.no, 1) for c in ch)
        self.implicit = implicit
        if implicit:
            self.ia = nn.ModuleList(ImplicitA(c) for c in ch)
            self.im = nn.ModuleList(ImplicitM(self.na * (5 + num_classes)) for _ in ch)
        self.proto = Proto(ch[0], npr, nm)
        self._init_biases()

    @torch.no_grad()
    def _init_biases(self) -> None:
        """YOLOv5's prior: ~8 objects per 640² image at each level, class prior 0.6/(nc − 0.99)."""
        for conv, s in zip(self.m, self.strides):
            b = conv.bias.view(self.na, self.no)
            b[:, 4] += math.log(8 / (640 / s) ** 2)
            b[:, 5:5 + self.nc] += math.log(0.6 / (self.nc - 0.99)) if self.nc > 1 else 0.0

    def _level(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if self.implicit:
            x = self.ia[i](x)
        y = self.m[i](x)
        bs, _, ny, nx = y.shape
        y = y.view(bs, self.na, self.no, ny, nx)
        if self.implicit:
            nd = 5 + self.nc
            scale = self.im[i].implicit.view(1, self.na, nd, 1, 1)
            y = torch.cat([y[:, :, :nd] * scale, y[:, :, nd:]], 2)
        return y.permute(0, 1, 3, 4, 2).contiguous()

    def forward(self, xs: Sequence[torch.Tensor]):
        proto = self.proto(xs[0])
        feats = [self._level(i, x) for i, x in enumerate(xs)]
        if self.training:
            return feats, proto
        return torch.cat([self._decode(i, y) for i, y in enumerate(feats)], 1), proto

    def _decode(self, i: int, y: torch.Tensor) -> torch.Tensor:
        bs, na, ny, nx, no = y.shape
        gy = torch.arange(ny, device=y.device, dtype=y.dtype)
        gx = torch.arange(nx, device=y.device, dtype=y.dtype)
        yv, xv = torch.meshgrid(gy, gx, indexing="ij")
        grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2)
        anchor = self.anchors[i].to(y.dtype).view(1, na, 1, 1, 2)
        nd = 5 + self.nc
        xy = (y[..., 0:2].sigmoid() * 2 - 0.5 + grid) * self.stride[i].to(y.dtype)
        wh = (y[..., 2:4].sigmoid() * 2) ** 2 * anchor
        conf = y[..., 4:nd].sigmoid()
        out = torch.cat([xy, wh, conf, y[..., nd:]], -1)
        return out.view(bs, na * ny * nx, no)

    def extra_repr(self) -> str:
        return f"nc={self.nc}, na={self.na}, nl={self.nl}, nm={self.nm}, implicit={self.implicit}"


class YOLOSegModel(nn.Module):
    """A body returning (P3, P4, P5) at strides 8/16/32, then :class:`Segment`. Detector interface
    attributes: ``num_classes``, ``stride``, ``head``, ``in_chans``, ``default_imgsz``."""

    def __init__(self, body: nn.Module, head: Segment, in_chans: int = 3, default_imgsz: int = 640) -> None:
        super().__init__()
        self.body = body
        self.head = head
        self.num_classes = head.nc
        self.in_chans = in_chans
        self.default_imgsz = default_imgsz
        self.register_buffer("stride", head.stride.clone(), persistent=False)

    def forward(self, x: torch.Tensor):
        return self.head(list(self.body(x)))
