"""Post-processing of the YOLOv5-seg head: NMS, prototype mask decoding, and the way back to the original image.

The decoder is the one the paper evaluates every detector with (YOLOR / YOLOv5 heads; paper §5.1 names YOLOv5
r6.2, whose segmentation code first shipped in v7.0, the version followed here): each
anchor predicts a box, an objectness, class scores and ``nm`` coefficients; an instance mask is
``sigmoid(coefs · proto)`` cropped to the predicted box. Boxes are suppressed per class with
``torchvision.ops.batched_nms``.

Coordinates: the network sees a letterboxed ``S×S`` canvas; ``ratio_pad = ((gain, gain), (pad_w, pad_h))`` maps
it back to the original image: ``original = (canvas - pad) / gain`` (the letterbox of gradpath/data/images.py).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms, box_convert

from gradpath.threads import one_cpu_thread

__all__ = [
    "non_max_suppression", "crop_mask", "process_masks", "scale_boxes", "masks_to_original",
]


def non_max_suppression(
    pred: torch.Tensor,
    conf_thres: float = 0.001,
    iou_thres: float = 0.6,
    max_det: int = 300,
    nm: int = 32,
    multi_label: bool = False,
    agnostic: bool = False,
    max_nms: int = 30000,
) -> list[torch.Tensor]:
    """Per-image detections from the decoded head output.

    ``pred``: (B, N, 5 + nc + nm) with cx, cy, w, h (pixels), obj, class scores (already sigmoided), mask coefs.
    The score of a (box, class) pair is ``obj × p(class)``, as in YOLOv5. With ``multi_label`` a box may be kept
    for every class whose score passes ``conf_thres`` (what COCO evaluation wants: it raises recall at low
    thresholds); otherwise only its best class.

    Returns a list of B tensors (n, 6 + nm): x1, y1, x2, y2, conf, cls, coefs — sorted by confidence.
    """
    if not 0.0 <= conf_thres <= 1.0 or not 0.0 <= iou_thres <= 1.0:
        raise ValueError(f"conf_thres and iou_thres must be in [0, 1], got {conf_thres}, {iou_thres}")
    nc = pred.shape[2] - nm - 5
    if nc < 1:
        raise ValueError(f"pred has {pred.shape[2]} channels: too few for 5 + nc + nm with nm={nm}")
    out: list[torch.Tensor] = []
    for x in pred:
        x = x[x[:, 4] > conf_thres]
        if not x.shape[0]:
            out.append(x.new_zeros((0, 6 + nm)))
            continue
        scores = x[:, 5:5 + nc] * x[:, 4:5]
        boxes = box_convert(x[:, :4], "cxcywh", "xyxy")
        coefs = x[:, 5 + nc:]
        if multi_label:
            i, j = (scores > conf_thres).nonzero(as_tuple=True)
            dets = torch.cat((boxes[i], scores[i, j, None], j[:, None].to(x.dtype), coefs[i]), 1)
        else:
            conf, j = scores.max(1, keepdim=True)
            dets = torch.cat((boxes, conf, j.to(x.dtype), coefs), 1)[conf.view(-1) > conf_thres]
        if not dets.shape[0]:
            out.append(x.new_zeros((0, 6 + nm)))
            continue
        dets = dets[dets[:, 4].argsort(descending=True)[:max_nms]]
        groups = torch.zeros_like(dets[:, 5]) if agnostic else dets[:, 5]
        keep = batched_nms(dets[:, :4], dets[:, 4], groups, iou_thres)[:max_det]
        out.append(dets[keep])
    return out


def crop_mask(masks: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Zero every mask outside its box. ``masks`` (n, h, w); ``boxes`` (n, 4) x1, y1, x2, y2 in mask pixels.

    Pixel (r, c) covers [c, c+1) × [r, r+1); it is kept when its centre lies in the box: ``x1 <= c + 0.5 < x2``
    and ``y1 <= r + 0.5 < y2``. Comparing centres (not corners) keeps a box edge that lands on a pixel border
    up to float rounding (e.g. 49.99999 after undoing the letterbox) from dropping a whole row or column.
    """
    n, h, w = masks.shape
    x1, y1, x2, y2 = boxes[:, :, None].unbind(1)  # each (n, 1)
    c = torch.arange(w, device=masks.device, dtype=boxes.dtype)[None, :] + 0.5
    r = torch.arange(h, device=masks.device, dtype=boxes.dtype)[None, :] + 0.5
    cols = (c >= x1) & (c < x2)  # (n, w)
    rows = (r >= y1) & (r < y2)  # (n, h)
    return masks * (rows[:, :, None] & cols[:, None, :])


def process_masks(
    proto: torch.Tensor,
    coefs: torch.Tensor,
    boxes: torch.Tensor,
    shape: Sequence[int],
    upsample: bool = True,
) -> torch.Tensor:
    """Instance masks on the input canvas. ``proto`` (nm, mh, mw); ``coefs`` (n, nm); ``boxes`` (n, 4) xyxy in
    canvas pixels of size ``shape = (H, W)``.

    The mask is cropped at prototype resolution (as YOLOv5-seg does), then bilinearly upsampled to ``shape``
    when ``upsample`` (else returned at (mh, mw)). Returns bool (n, H, W) — ``sigmoid > 0.5``.
    """
    nm, mh, mw = proto.shape
    h, w = int(shape[0]), int(shape[1])
    logits = (coefs.float() @ proto.float().reshape(nm, -1)).reshape(-1, mh, mw)
    boxes = boxes.float()
    scale = boxes.new_tensor([mw / w, mh / h, mw / w, mh / h])
    masks = crop_mask(logits.sigmoid(), boxes * scale)
    if upsample and (mh, mw) != (h, w) and masks.shape[0]:
        masks = F.interpolate(masks[None], (h, w), mode="bilinear", align_corners=False)[0]
    return masks > 0.5


def scale_boxes(boxes: torch.Tensor, ratio_pad, orig_shape: Sequence[int]) -> torch.Tensor:
    """Canvas xyxy → original-image xyxy: ``(xy - pad) / gain``, clipped to the image (h0, w0). Returns a copy."""
    (gx, gy), (pw, ph) = ratio_pad
    out = boxes.clone()
    out[:, [0, 2]] = ((out[:, [0, 2]] - pw) / gx).clamp(0, orig_shape[1])
    out[:, [1, 3]] = ((out[:, [1, 3]] - ph) / gy).clamp(0, orig_shape[0])
    return out


def _resample_matrix(n_out: int, n_in: int, gain: float, pad: float, canvas: int) -> torch.Tensor:
    """(n_out, n_in) bilinear weights from a prototype axis (n_in cells over ``canvas`` pixels) to the centres of
    ``n_out`` original pixels, through the letterbox (``canvas = original · gain + pad``); edges clamp, as
    ``F.interpolate(align_corners=False)`` does."""
    o = torch.arange(n_out, dtype=torch.float64) + 0.5
    p = ((o * gain + pad) * (n_in / canvas) - 0.5).clamp(0, n_in - 1)
    j0 = p.floor().long()
    j1 = (j0 + 1).clamp(max=n_in - 1)
    w1 = p - j0
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m.index_put_((torch.arange(n_out), j0), 1 - w1, accumulate=True)
    m.index_put_((torch.arange(n_out), j1), w1, accumulate=True)
    return m.float()


def masks_to_original(
    proto: torch.Tensor,
    coefs: torch.Tensor,
    boxes_orig: torch.Tensor,
    canvas_shape: Sequence[int],
    ratio_pad,
    orig_shape: Sequence[int],
    chunk: int = 64,
):
    """Binary masks at the original image resolution, yielded in chunks of at most ``chunk`` instances.

    The mask logits ``coefs · proto`` are resampled bilinearly from the prototype grid straight to the centres
    of the original pixels (through the letterbox: no padding, no double resize), thresholded at 0 (σ > 0.5),
    and only inside each box: the pixels whose centre lies in the box (the ``crop_mask`` rule) — "native"
    masks, sharper than cropping at 1/4 resolution, and what COCO compares with the ground truth. Work and
    memory scale with the box areas, not with detections × image size, which is what keeps validation at
    ``conf=0.001`` (up to 300 detections per image) affordable on a CPU.
    Yields bool tensors (k, h0, w0).
    """
    nm, mh, mw = proto.shape
    h0, w0 = int(orig_shape[0]), int(orig_shape[1])
    (gx, gy), (pw, ph) = ratio_pad
    ry = _resample_matrix(h0, mh, float(gy), float(ph), int(canvas_shape[0])).to(proto.device)
    rx = _resample_matrix(w0, mw, float(gx), float(pw), int(canvas_shape[1])).to(proto.device)
    p = proto.detach().float().reshape(nm, -1)
    b = boxes_orig.detach().float().cpu()
    c1 = (b[:, 0] - 0.5).ceil().clamp(0, w0).long().tolist()
    c2 = (b[:, 2] - 0.5).ceil().clamp(0, w0).long().tolist()
    r1 = (b[:, 1] - 0.5).ceil().clamp(0, h0).long().tolist()
    r2 = (b[:, 3] - 0.5).ceil().clamp(0, h0).long().tolist()
    for s in range(0, coefs.shape[0], chunk):
        logits = (coefs[s:s + chunk].detach().float() @ p).reshape(-1, mh, mw)
        out = torch.zeros(logits.shape[0], h0, w0, dtype=torch.bool, device=proto.device)
        with one_cpu_thread(proto.device):
            for k in range(logits.shape[0]):
                i = s + k
                if r2[i] > r1[i] and c2[i] > c1[i]:
                    out[k, r1[i]:r2[i], c1[i]:c2[i]] = (ry[r1[i]:r2[i]] @ logits[k] @ rx[c1[i]:c2[i]].T) > 0
        yield out


