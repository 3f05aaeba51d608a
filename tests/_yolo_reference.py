"""The YOLOv5 family's side, written once for the converter tests (``test_convert_yolov5.py``,
``test_convert_yolov7.py``).

gradpath's importers map YOLOv5 v7.0 -seg and YOLOv7 (u7 branch) yolov7-seg state dicts onto its own networks. To
check them without installing the peer package, the tests re-state the peer's layout independently, from their
yaml files and papers and never from gradpath's model: a state dict in their naming with random values, and a
functional eval forward pass over it. The parts both families share are here: the Conv unit (conv + BatchNorm +
SiLU), the random-tensor maker, the Proto mask branch, the anchor buffer in grid cells, and the Segment/ISegment
decode of the raw head outputs. Each test file keeps its own yaml, its layer walk and what only its family has
(YOLOv5's width/depth multiples and C3/SPPF, YOLOv7's ELAN/MP/SPPCSPC and ISegment's implicit layers). The checks
against the real packages are separate: ``benchmarks/check_yolov5_import.py``, and for YOLOv7 the one-off run
against u7's own model noted in docs/reconstructions.md ("Importing YOLOv7 (u7) yolov7-seg weights").
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

NA, NM = 3, 32  # anchors per output level, mask coefficients (Proto's output channels)
STRIDES = (8, 16, 32)  # P3, P4, P5

Maker = Callable[..., torch.Tensor]  # mk(kind, shape, scale=1.0): kind "w" (normal × scale), "pos", "count"


def tensor_maker(seed: int = 0, meta: bool = False) -> Maker:
    """``mk(kind, shape, scale)``, drawing from its own generator seeded with ``seed``: ``"w"`` normal × scale,
    ``"pos"`` uniform in [0.5, 1.5) (BatchNorm weights and variances), ``"count"`` an int64 in [1, 1000)
    (``num_batches_tracked``). ``meta``: shapes only (empty tensors on the meta device, nothing drawn)."""
    g = torch.Generator().manual_seed(seed)

    def mk(kind: str, shape: tuple, scale: float = 1.0) -> torch.Tensor:
        if meta:
            return torch.empty(shape, dtype=torch.int64 if kind == "count" else torch.float32, device="meta")
        if kind == "count":
            return torch.randint(1, 1000, shape, generator=g)
        if kind == "pos":
            return torch.rand(shape, generator=g) + 0.5
        return torch.randn(shape, generator=g) * scale

    return mk


def conv_unit(sd: dict, prefix: str, c1: int, c2: int, k: int, mk: Maker) -> None:
    """Their ``Conv`` (bias-free k×k conv + BatchNorm2d) c1 → c2, under ``prefix`` (``.conv.``, ``.bn.``)."""
    sd[f"{prefix}.conv.weight"] = mk("w", (c2, c1, k, k), 1.0 / math.sqrt(c1 * k * k))
    sd[f"{prefix}.bn.weight"] = mk("pos", (c2,))
    sd[f"{prefix}.bn.bias"] = mk("w", (c2,), 0.1)
    sd[f"{prefix}.bn.running_mean"] = mk("w", (c2,), 0.1)
    sd[f"{prefix}.bn.running_var"] = mk("pos", (c2,))
    sd[f"{prefix}.bn.num_batches_tracked"] = mk("count", ())


def proto_state(sd: dict, prefix: str, c1: int, npr: int, mk: Maker) -> None:
    """Their ``Proto(c1, npr, NM)``: 3×3 conv, ×2 upsample, 3×3 conv, 1×1 conv to NM masks."""
    conv_unit(sd, f"{prefix}.cv1", c1, npr, 3, mk)
    conv_unit(sd, f"{prefix}.cv2", npr, npr, 3, mk)
    conv_unit(sd, f"{prefix}.cv3", npr, NM, 1, mk)


def anchors_state(anchors_px: tuple, mk: Maker, meta: bool = False) -> torch.Tensor:
    """The head's ``anchors`` buffer (3×NA×2): after DetectionModel.__init__ it is pixels / stride, i.e. grid
    cells; perturbed like an autoanchor result (no perturbation under ``meta``, which gives shapes only)."""
    px = torch.tensor(anchors_px, dtype=torch.float32).view(3, NA, 2)
    jitter = 1 + 0.1 * mk("pos", (3, NA, 2)) if not meta else 1.0
    anchors = px * jitter / torch.tensor(STRIDES, dtype=torch.float32).view(3, 1, 1)
    return anchors.to("meta") if meta else anchors


def conv_bn_silu(sd: dict[str, torch.Tensor], prefix: str, t: torch.Tensor, s: int = 1,
                 pad: int | None = None) -> torch.Tensor:
    """Their ``Conv.forward`` in eval mode, from the keys under ``prefix``; padding k // 2 unless given."""
    w = sd[f"{prefix}.conv.weight"]
    t = F.conv2d(t, w, None, s, w.shape[-1] // 2 if pad is None else pad)
    t = F.batch_norm(t, sd[f"{prefix}.bn.running_mean"], sd[f"{prefix}.bn.running_var"], sd[f"{prefix}.bn.weight"],
                     sd[f"{prefix}.bn.bias"], False, 0.0, 1e-3)  # their BatchNorm2d eps (initialize_weights)
    return F.silu(t)


def proto_forward(sd: dict[str, torch.Tensor], prefix: str, p3: torch.Tensor) -> torch.Tensor:
    """Their ``Proto.forward`` on the raw P3 input of the head."""
    return conv_bn_silu(sd, f"{prefix}.cv3", conv_bn_silu(sd, f"{prefix}.cv2", F.interpolate(
        conv_bn_silu(sd, f"{prefix}.cv1", p3), scale_factor=2.0, mode="nearest")))


def segment_decode(raw: list[torch.Tensor], anchors: torch.Tensor, nc: int) -> torch.Tensor:
    """Segment's (and ISegment's) eval decode of the per-level output-conv results ``raw`` (bs × NA·no × ny × nx)
    with the ``anchors`` buffer in grid cells: xy = (2σ + grid − 0.5)·stride, wh = (2σ)²·anchor px, confidence and
    class scores σ, mask coefficients as they are. Returns bs × Σ NA·ny·nx × no, levels in order."""
    z = []
    for lvl, t in enumerate(raw):
        bs, _, ny, nx = t.shape
        t = t.view(bs, NA, -1, ny, nx).permute(0, 1, 3, 4, 2)
        yv, xv = torch.meshgrid(torch.arange(ny, dtype=t.dtype), torch.arange(nx, dtype=t.dtype), indexing="ij")
        grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2) - 0.5
        anchor_grid = (anchors[lvl] * STRIDES[lvl]).view(1, NA, 1, 1, 2)
        xy, wh, conf, mask = t.split((2, 2, nc + 1, t.shape[-1] - nc - 5), 4)
        xy = (xy.sigmoid() * 2 + grid) * STRIDES[lvl]
        wh = (wh.sigmoid() * 2) ** 2 * anchor_grid
        z.append(torch.cat((xy, wh, conf.sigmoid(), mask), 4).reshape(bs, -1, t.shape[-1]))
    return torch.cat(z, 1)
