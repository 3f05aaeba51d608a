"""Geometric and colour augmentation that keeps images, boxes and masks consistent.

The recipe is YOLOv5's (the paper, Sec. 5.1, names YOLOv5 r6.2; segmentation first shipped in YOLOv5 v7.0,
which is the version this code follows): letterbox for validation; mosaic of 4 images, random affine (rotation,
scale, translation), mixup, copy-paste, HSV jitter and flips for training. Every geometric step is one 3x3 matrix from original image pixels to output pixels, so the image is
resampled once (bilinear) and each instance mask once (nearest, gathered straight at the ``S/4`` mask
resolution the loss uses).

Boxes follow the same matrix through their corners, which is exact for scale/translate/flip of an uncropped
instance. A rotation makes corner boxes loose, and cropping a box at the canvas edge keeps empty corners of a
non-rectangular shape, so for those instances the box is recomputed from the transformed full-resolution mask
(sampled only inside the corner box, so it costs little). Instances are then kept by YOLOv5 v7.0's rule
(``box_candidates``): wider and higher than 2 px, aspect ratio below 100, and more than 1% (box-only: 10%) of
their area on the canvas left after cropping.

NOTE: ``torchvision.transforms.v2.RandomAffine`` on ``tv_tensors`` keeps the canvas size, whereas mosaic needs a
2S canvas warped to S; composing the mosaic placement and the affine into one matrix also saves a resampling,
so the warp is done here with one PIL affine transform; boxes of masks use ``torchvision.ops.masks_to_boxes``.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.ops import masks_to_boxes

from gradpath.data.images import FILL
from gradpath.hyp import SegmentHyp

MASK_STRIDE = 4  # masks are returned at imgsz // 4 (the prototype resolution of the YOLOv5-seg head)


def scale_translate(r: float, dx: float, dy: float) -> np.ndarray:
    return np.array([[r, 0, dx], [0, r, dy], [0, 0, 1]], np.float64)


@dataclass
class Placement:
    """Where one source image lands on the canvas: ``A`` maps its original pixels to canvas pixels; only the
    canvas rectangle ``region`` (x1, y1, x2, y2) shows it (mosaic tiles are cropped)."""

    A: np.ndarray
    region: tuple[float, float, float, float]


def random_affine(canvas_hw: tuple[int, int], out_size: int, hyp: SegmentHyp, rng: random.Random) -> tuple[np.ndarray, bool]:
    """Canvas->output matrix: centre, rotate+scale, translate to the output centre +/- ``translate``.
    Returns the matrix and whether it rotates (so boxes must come from masks)."""
    hc, wc = canvas_hw
    C = np.array([[1, 0, -wc / 2], [0, 1, -hc / 2], [0, 0, 1]], np.float64)
    a = rng.uniform(-hyp.degrees, hyp.degrees) if hyp.degrees > 0 else 0.0
    s = rng.uniform(1 - hyp.scale, 1 + hyp.scale) if hyp.scale > 0 else 1.0
    ca, sa = math.cos(math.radians(a)) * s, math.sin(math.radians(a)) * s
    R = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]], np.float64)
    t = hyp.translate
    tx = rng.uniform(0.5 - t, 0.5 + t) * out_size if t > 0 else 0.5 * out_size
    ty = rng.uniform(0.5 - t, 0.5 + t) * out_size if t > 0 else 0.5 * out_size
    T = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], np.float64)
    return T @ R @ C, a != 0.0


def warp_image(canvas: np.ndarray, M: np.ndarray, out_size: int) -> np.ndarray:
    """Resample a uint8 (Hc, Wc, 3) canvas through canvas->output matrix ``M`` (bilinear, grey border).

    PIL's affine transform works on uint8 in C and samples at pixel centres, the convention used for boxes and
    masks here; it is several times faster than ``grid_sample`` on a float copy."""
    hc, wc = canvas.shape[:2]
    if out_size == hc == wc and np.allclose(M, np.eye(3)):
        return canvas
    Minv = np.linalg.inv(M)
    out = Image.fromarray(canvas).transform((out_size, out_size), Image.AFFINE, data=tuple(Minv[:2].ravel()),
                                            resample=Image.BILINEAR, fillcolor=(FILL, FILL, FILL))
    return np.asarray(out)


def sample_masks(masks_hwn: np.ndarray, place: Placement, M: np.ndarray, out_size: int | tuple[int, int],
                 stride: int) -> np.ndarray:
    """Nearest-neighbour gather of (h0, w0, n) original-resolution masks at the centres of the ``stride``-px
    cells of the output (n, H // stride, W // stride); ``out_size`` is S (square) or (H, W) (rectangular
    validation). Cells outside ``place.region`` are 0."""
    n = masks_hwn.shape[2]
    H, W = (out_size, out_size) if isinstance(out_size, int) else out_size
    gh, gw = H // stride, W // stride
    if n == 0:
        return np.zeros((0, gh, gw), np.uint8)
    gx, gy = np.meshgrid((np.arange(gw, dtype=np.float64) + 0.5) * stride,
                         (np.arange(gh, dtype=np.float64) + 0.5) * stride)
    Minv = np.linalg.inv(M)
    cx = Minv[0, 0] * gx + Minv[0, 1] * gy + Minv[0, 2]  # canvas coordinates
    cy = Minv[1, 0] * gx + Minv[1, 1] * gy + Minv[1, 2]
    x1, y1, x2, y2 = place.region
    inside = (cx >= x1) & (cx < x2) & (cy >= y1) & (cy < y2)
    Ainv = np.linalg.inv(place.A)
    sx = np.floor(Ainv[0, 0] * cx + Ainv[0, 1] * cy + Ainv[0, 2]).astype(np.int64)
    sy = np.floor(Ainv[1, 0] * cx + Ainv[1, 1] * cy + Ainv[1, 2]).astype(np.int64)
    h0, w0 = masks_hwn.shape[:2]
    inside &= (sx >= 0) & (sx < w0) & (sy >= 0) & (sy < h0)
    out = np.zeros((gh, gw, n), np.uint8)
    out[inside] = masks_hwn[sy[inside], sx[inside]]
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def transform_boxes(boxes: np.ndarray, place: Placement, M: np.ndarray,
                    out_size: float | tuple[int, int]) -> np.ndarray:
    """xyxy original-pixel boxes -> output pixels: placed and cropped to the tile, then the corners through M,
    clipped to the output (S, or (H, W); ``math.inf``: not clipped)."""
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float64)
    b = boxes.astype(np.float64)
    A = place.A
    b = np.stack([b[:, 0] * A[0, 0] + A[0, 2], b[:, 1] * A[1, 1] + A[1, 2],
                  b[:, 2] * A[0, 0] + A[0, 2], b[:, 3] * A[1, 1] + A[1, 2]], 1)
    x1, y1, x2, y2 = place.region
    b[:, [0, 2]] = b[:, [0, 2]].clip(x1, x2)
    b[:, [1, 3]] = b[:, [1, 3]].clip(y1, y2)
    corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], 1)  # (n, 4, 2)
    pts = corners @ M[:2, :2].T + M[:2, 2]
    out = np.concatenate([pts.min(1), pts.max(1)], 1)
    if isinstance(out_size, tuple):
        return out.clip(0, [out_size[1], out_size[0], out_size[1], out_size[0]])
    return out if math.isinf(out_size) else out.clip(0, out_size)


def tight_boxes(masks_hwn: np.ndarray, place: Placement, M: np.ndarray, boxes_out: np.ndarray,
                idx: np.ndarray) -> np.ndarray:
    """Replace ``boxes_out[idx]`` (output pixels, a superset of the instance) by the tight box of the instance's
    transformed mask, sampled at output pixel centres inside that box; an instance with no visible mask pixel
    gets an empty box (and is dropped as degenerate)."""
    out = boxes_out.copy()
    if len(idx) == 0:
        return out
    Minv = np.linalg.inv(M)
    Ainv = np.linalg.inv(place.A)
    rx1, ry1, rx2, ry2 = place.region
    h0, w0 = masks_hwn.shape[:2]
    for k in idx:
        x1, y1 = int(math.floor(out[k, 0])), int(math.floor(out[k, 1]))
        x2, y2 = int(math.ceil(out[k, 2])), int(math.ceil(out[k, 3]))
        if x2 <= x1 or y2 <= y1:
            out[k] = 0.0
            continue
        gx, gy = np.meshgrid(np.arange(x1, x2) + 0.5, np.arange(y1, y2) + 0.5)
        cx = Minv[0, 0] * gx + Minv[0, 1] * gy + Minv[0, 2]
        cy = Minv[1, 0] * gx + Minv[1, 1] * gy + Minv[1, 2]
        sx = np.floor(Ainv[0, 0] * cx + Ainv[0, 1] * cy + Ainv[0, 2]).astype(np.int64)
        sy = np.floor(Ainv[1, 0] * cx + Ainv[1, 1] * cy + Ainv[1, 2]).astype(np.int64)
        ok = (cx >= rx1) & (cx < rx2) & (cy >= ry1) & (cy < ry2) & (sx >= 0) & (sx < w0) & (sy >= 0) & (sy < h0)
        vis = np.zeros(gx.shape, bool)
        vis[ok] = masks_hwn[sy[ok], sx[ok], k] > 0
        rows, cols = np.nonzero(vis.any(1))[0], np.nonzero(vis.any(0))[0]
        if len(rows) == 0:
            out[k] = 0.0
        else:
            out[k] = [x1 + cols[0], y1 + rows[0], x1 + cols[-1] + 1, y1 + rows[-1] + 1]
    return out


def instance_boxes(boxes: np.ndarray, has_seg: np.ndarray, masks_hwn: np.ndarray, place: Placement,
                   M: np.ndarray, out_size: int | tuple[int, int], rotated: bool) -> tuple[np.ndarray, np.ndarray]:
    """(boxes in output pixels, the same boxes before any cropping) for one placed source image. Instances with a
    real mask get their box from it when rotated or cropped; box-only instances keep the corner box."""
    after = transform_boxes(boxes, place, M, out_size)
    unclipped = Placement(place.A, (-math.inf, -math.inf, math.inf, math.inf))
    before = transform_boxes(boxes, unclipped, M, math.inf)
    if len(boxes):
        cropped = np.abs(after - before).max(1) > 1e-6
        redo = np.nonzero(has_seg & (cropped | rotated))[0]
        after = tight_boxes(masks_hwn, place, M, after, redo)
    return after, before


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """Tight xyxy boxes (pixel edges, so a 1-px mask has w = 1) of (n, H, W) masks; empty masks give zeros."""
    out = torch.zeros((masks.shape[0], 4))
    nonempty = masks.flatten(1).any(1).bool()
    if nonempty.any():
        out[nonempty] = masks_to_boxes(masks[nonempty]).float() + torch.tensor([0.0, 0.0, 1.0, 1.0])
    return out


def hsv_jitter(img: np.ndarray, hgain: float, sgain: float, vgain: float, rng: random.Random) -> np.ndarray:
    """Random hue/saturation/value gains through lookup tables in PIL's HSV space ((H, W, 3) uint8 in and out)."""
    if not (hgain or sgain or vgain):
        return img
    r = [rng.uniform(-1, 1) * g + 1 for g in (hgain, sgain, vgain)]
    x = np.arange(256, dtype=np.float64)
    luts = [((x * r[0]) % 256).astype(np.uint8), np.clip(x * r[1], 0, 255).astype(np.uint8),
            np.clip(x * r[2], 0, 255).astype(np.uint8)]
    hsv = Image.fromarray(img).convert("HSV")
    chans = [c.point(lut.tolist()) for c, lut in zip(hsv.split(), luts)]
    return np.asarray(Image.merge("HSV", chans).convert("RGB"))


def candidate_reference(boxes: np.ndarray, place: Placement, canvas_hw: tuple[int, int], M: np.ndarray) -> np.ndarray:
    """The "before" boxes ``box_candidates`` compares with, measured as YOLOv5-seg does: placed on the canvas,
    clipped to the canvas (not to the mosaic tile, so an instance mostly hidden by a neighbouring tile counts as
    having lost that area), then scaled by the affine's scale gain (rotation and translation keep the area)."""
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float64)
    hc, wc = canvas_hw
    b = transform_boxes(boxes, Placement(place.A, (0.0, 0.0, float(wc), float(hc))), np.eye(3), math.inf)
    return b * math.sqrt(abs(np.linalg.det(M[:2, :2])))


def box_candidates(before: np.ndarray, after: np.ndarray, min_wh: float = 2.0,
                   area_thr: float | np.ndarray = 0.1, ar_thr: float = 100.0) -> np.ndarray:
    """Keep boxes more than ``min_wh`` px wide and high that kept more than ``area_thr`` of their (scaled) area
    and have aspect ratio < ``ar_thr`` (YOLOv5 v7.0's rule; its segmentation training passes ``area_thr`` 0.01
    for instances with a polygon, 0.1 for box-only ones). ``before``: ``candidate_reference``."""
    w1, h1 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    ar = np.maximum(w2 / (h2 + 1e-16), h2 / (w2 + 1e-16))
    return (w2 > min_wh) & (h2 > min_wh) & (w2 * h2 / (w1 * h1 + 1e-16) > area_thr) & (ar < ar_thr)


SEGMENT_AREA_THR, BOX_AREA_THR = 0.01, 0.1  # box_candidates' area thresholds (YOLOv5-seg / YOLOv5 detection)


def mixup(img: np.ndarray, other: np.ndarray, rng: random.Random) -> np.ndarray:
    """Blend two (S, S, 3) uint8 samples with a Beta(32, 32) weight (about 0.5 +/- 0.06), as YOLOv5 does; the
    caller concatenates both samples' instances (each object stays a target at its own place)."""
    r = rng.betavariate(32.0, 32.0)
    return (img.astype(np.float32) * r + other.astype(np.float32) * (1.0 - r)).astype(np.uint8)


def box_ioa(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection of one xyxy ``box`` with each of ``boxes``, over the area of each of ``boxes``."""
    iw = (np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])).clip(0)
    ih = (np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])).clip(0)
    return iw * ih / ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) + 1e-16)


COPY_PASTE_MAX_IOA = 0.30  # a pasted copy may cover at most this fraction of any existing box (YOLOv5's limit)


def copy_paste(img: np.ndarray, boxes: np.ndarray, cls: np.ndarray, masks: np.ndarray, has_seg: np.ndarray,
               full_mask, p: float, rng: random.Random) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """YOLOv5's segment copy-paste on an (S, S, 3) sample: ``round(p * n)`` randomly chosen instances with a real
    mask are mirrored left-right and their mirror-image pixels pasted over the sample, unless the mirrored box
    would cover more than 30% of an existing one. Pasted instances are appended (box mirrored, mask the mirrored
    ``S/4`` mask); the pasted pixels are removed from the masks of instances they cover.

    ``full_mask(j)`` gives instance ``j``'s (S, S) bool mask at output resolution (computed only for the chosen
    ones). NOTE: YOLOv5 pastes on the 2S mosaic canvas before the affine; here it is done on the S output after
    it, which mirrors within the visible frame (the copy is always visible) and needs no canvas-size masks."""
    cand = np.nonzero(has_seg)[0]
    k = round(p * len(cand))
    if k == 0:
        return img, boxes, cls, masks
    S = img.shape[1]
    mirrored = img[:, ::-1]
    out = img.copy()
    boxes_l, cls_l, masks_l = list(boxes), list(cls), list(masks)
    for j in rng.sample(list(cand), k):
        b = boxes[j]
        mb = np.array([S - b[2], b[1], S - b[0], b[3]], boxes.dtype)
        if (box_ioa(mb, np.array(boxes_l).reshape(-1, 4)) >= COPY_PASTE_MAX_IOA).any():
            continue
        m = full_mask(j)[:, ::-1]
        out[m] = mirrored[m]
        m4 = masks[j][:, ::-1]
        for q in range(len(masks_l)):  # the copy hides what it covers
            masks_l[q] = masks_l[q] & (1 - m4)
        boxes_l.append(mb)
        cls_l.append(cls[j])
        masks_l.append(np.ascontiguousarray(m4))
    g = masks.shape[1:]
    return (out, np.array(boxes_l, boxes.dtype).reshape(-1, 4), np.array(cls_l, cls.dtype),
            np.array(masks_l, masks.dtype).reshape(-1, *g))
