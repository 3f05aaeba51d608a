"""Post-processing of the YOLOv5-seg head: NMS, prototype mask decoding, and the way back to the original image.

The decoder is the one the paper evaluates every detector with (YOLOR / YOLOv5-r6.2 heads, paper §5.1): each
anchor predicts a box, an objectness, class scores and ``nm`` coefficients; an instance mask is
``sigmoid(coefs · proto)`` cropped to the predicted box. Boxes are suppressed per class with
``torchvision.ops.batched_nms``.

Coordinates: the network sees a letterboxed ``S×S`` canvas; ``ratio_pad = ((gain, gain), (pad_w, pad_h))`` maps
it back to the original image: ``original = (canvas - pad) / gain`` (contract B).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms, box_convert

__all__ = [
    "non_max_suppression", "crop_mask", "process_masks", "scale_boxes", "masks_to_original", "unpad_region",
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
    x1, y1, x2, y2 = boxes[:, :, None, None].unbind(1)  # each (n, 1, 1)
    c = torch.arange(w, device=masks.device, dtype=boxes.dtype)[None, None, :] + 0.5
    r = torch.arange(h, device=masks.device, dtype=boxes.dtype)[None, :, None] + 0.5
    return masks * ((c >= x1) & (c < x2) & (r >= y1) & (r < y2))


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


def unpad_region(canvas_shape: Sequence[int], ratio_pad, orig_shape: Sequence[int]) -> tuple[int, int, int, int]:
    """Rows/cols ``(top, bottom, left, right)`` of the canvas that hold the image (the letterbox rounding)."""
    (gx, gy), (pw, ph) = ratio_pad
    hc, wc = int(canvas_shape[0]), int(canvas_shape[1])
    top, left = int(round(ph - 0.1)), int(round(pw - 0.1))
    bottom = min(hc, top + max(1, int(round(orig_shape[0] * gy))))
    right = min(wc, left + max(1, int(round(orig_shape[1] * gx))))
    return max(0, top), bottom, max(0, left), right


def masks_to_original(
    proto: torch.Tensor,
    coefs: torch.Tensor,
    boxes_orig: torch.Tensor,
    canvas_shape: Sequence[int],
    ratio_pad,
    orig_shape: Sequence[int],
    chunk: int = 16,
):
    """Binary masks at the original image resolution, yielded in chunks of at most ``chunk`` instances.

    The mask logits are upsampled from the prototype grid to the canvas, the letterbox padding is cut away,
    the rest is resized to (h0, w0), thresholded and cropped to the box in original coordinates ("native"
    masks: sharper than cropping at 1/4 resolution, and what the COCO metric compares with the ground truth).
    Chunking keeps memory at ``chunk × h0 × w0`` however many detections there are.
    Yields bool tensors (k, h0, w0).
    """
    nm, mh, mw = proto.shape
    h0, w0 = int(orig_shape[0]), int(orig_shape[1])
    top, bottom, left, right = unpad_region(canvas_shape, ratio_pad, orig_shape)
    p = proto.float().reshape(nm, -1)
    for s in range(0, coefs.shape[0], chunk):
        logits = (coefs[s:s + chunk].float() @ p).reshape(-1, 1, mh, mw)
        logits = F.interpolate(logits, tuple(int(v) for v in canvas_shape), mode="bilinear", align_corners=False)
        logits = logits[:, :, top:bottom, left:right]
        logits = F.interpolate(logits, (h0, w0), mode="bilinear", align_corners=False)[:, 0]
        yield crop_mask((logits > 0).float(), boxes_orig[s:s + chunk].float()).bool()
