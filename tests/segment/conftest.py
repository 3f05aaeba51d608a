"""Shared pieces for the segmentation-task tests: a tiny stand-in detector and a hand-made batch."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

ANCHORS = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))


class TinyProto(nn.Module):
    def __init__(self, c: int, nm: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(c, 16, 3, 1, 1), nn.SiLU(), nn.Upsample(scale_factor=2),
                                 nn.Conv2d(16, nm, 1))

    def forward(self, x):
        return self.net(x)


class TinySegment(nn.Module):
    """Follows the detector interface of gradpath/models/detect.py: anchors (nl, na, 2) in pixels, raw feats in
    training, decoded (pred, proto) in eval."""

    def __init__(self, nc: int, ch=(16, 32, 64), nm: int = 8) -> None:
        super().__init__()
        self.nc, self.nm, self.nl, self.na = nc, nm, 3, 3
        self.no = 5 + nc + nm
        self.register_buffer("anchors", torch.tensor(ANCHORS, dtype=torch.float32).view(3, 3, 2))
        self.register_buffer("stride", torch.tensor([8.0, 16.0, 32.0]))
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)
        self.proto = TinyProto(ch[0], nm)
        for conv, s in zip(self.m, (8, 16, 32)):
            b = conv.bias.view(self.na, -1)
            with torch.no_grad():
                b[:, 4] += math.log(8 / (640 / s) ** 2)
                b[:, 5:5 + nc] += math.log(0.6 / (nc - 0.99))

    def forward(self, xs):
        proto = self.proto(xs[0])
        feats, outs = [], []
        for i, x in enumerate(xs):
            b, _, h, w = x.shape
            y = self.m[i](x).view(b, self.na, self.no, h, w).permute(0, 1, 3, 4, 2).contiguous()
            feats.append(y)
            if not self.training:
                gy, gx = torch.meshgrid(torch.arange(h, dtype=y.dtype), torch.arange(w, dtype=y.dtype),
                                        indexing="ij")
                grid = torch.stack((gx, gy), -1).view(1, 1, h, w, 2)
                xy = (y[..., :2].sigmoid() * 2 - 0.5 + grid) * self.stride[i]
                wh = (y[..., 2:4].sigmoid() * 2) ** 2 * self.anchors[i].view(1, self.na, 1, 1, 2)
                rest = torch.cat((y[..., 4:5 + self.nc].sigmoid(), y[..., 5 + self.nc:]), -1)
                outs.append(torch.cat((xy, wh, rest), -1).view(b, -1, self.no))
        if self.training:
            return feats, proto
        return torch.cat(outs, 1), proto


class TinySegModel(nn.Module):
    def __init__(self, num_classes: int = 3, nm: int = 8) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = 3
        self.default_imgsz = 640
        c = (16, 32, 64)
        self.b1 = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.SiLU(), nn.Conv2d(8, 16, 3, 2, 1),
                                nn.SiLU(), nn.Conv2d(16, c[0], 3, 2, 1), nn.SiLU())
        self.b2 = nn.Sequential(nn.Conv2d(c[0], c[1], 3, 2, 1), nn.SiLU())
        self.b3 = nn.Sequential(nn.Conv2d(c[1], c[2], 3, 2, 1), nn.SiLU())
        self.head = TinySegment(num_classes, c, nm)
        self.register_buffer("stride", torch.tensor([8.0, 16.0, 32.0]), persistent=False)

    def forward(self, x):
        p3 = self.b1(x)
        p4 = self.b2(p3)
        p5 = self.b3(p4)
        return self.head([p3, p4, p5])


@pytest.fixture(autouse=True)
def one_thread():
    """These tests run many tiny ops: on a shared 2-core machine intra-op threads only add contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return TinySegModel(num_classes=3, nm=8)


def box_mask(S: int, cx: float, cy: float, w: float, h: float, r: int = 4) -> torch.Tensor:
    """A (S/r, S/r) uint8 mask filling the normalised box."""
    m = torch.zeros(S // r, S // r, dtype=torch.uint8)
    n = S // r
    x1, x2 = int(round((cx - w / 2) * n)), int(round((cx + w / 2) * n))
    y1, y2 = int(round((cy - h / 2) * n)), int(round((cy + h / 2) * n))
    m[y1:y2, x1:x2] = 1
    return m


@pytest.fixture
def tiny_batch():
    """Two 64-px images, three objects: targets (N, 6) and masks (N, 16, 16)."""
    torch.manual_seed(1)
    S = 64
    targets = torch.tensor([[0, 0, 0.30, 0.35, 0.30, 0.40],
                            [0, 2, 0.70, 0.70, 0.25, 0.25],
                            [1, 1, 0.50, 0.50, 0.60, 0.50]])
    masks = torch.stack([box_mask(S, *t[2:].tolist()) for t in targets])
    img = torch.zeros(2, 3, S, S)
    for t in targets:
        b, c = int(t[0]), int(t[1])
        x1, y1 = int((t[2] - t[4] / 2) * S), int((t[3] - t[5] / 2) * S)
        x2, y2 = int((t[2] + t[4] / 2) * S), int((t[3] + t[5] / 2) * S)
        img[b, c, y1:y2, x1:x2] = 1.0
    return img, targets, masks
