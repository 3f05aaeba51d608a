"""Prediction on image files: letterbox, detect, decode masks at the original resolution, draw, write JSON.

Each image is read (EXIF orientation applied) and letterboxed to the model's canvas by
``gradpath.data.images`` — the same functions the validation dataset uses, so ``predict`` and ``val`` give one
checkpoint the identical input tensor — run through the eval forward, post-processed with
``non_max_suppression`` and mapped back to the original pixels. Outputs in ``out_dir``: one annotated image
per input (masks blended, boxes with class and score) and ``predictions.json``:
``[{"file", "width", "height", "detections": [{"class", "name", "score", "box": [x1, y1, x2, y2],
"segmentation": RLE}]}]`` (RLE as in COCO, ``counts`` a str; decode with ``pycocotools.mask.decode``).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks
from tqdm import tqdm

from gradpath.checks import check_imgsz
from gradpath.data.images import letterbox, list_images, read_image
from gradpath.engine.utils import unwrap
from gradpath.errors import GradpathError
from gradpath.tasks.segment.postprocess import masks_to_original, non_max_suppression, scale_boxes
from gradpath.tasks.segment.validate import encode_masks

__all__ = ["predict", "list_images"]

_PALETTE = ["#FF3838", "#2C99A8", "#FF9D97", "#00C2FF", "#FF701F", "#344593", "#FFB21D", "#6473FF", "#CFD231",
            "#0018EC", "#48F90A", "#8438FF", "#92CC17", "#520085", "#3DDB86", "#CB38FF", "#1A9334", "#FF95C8",
            "#00D4BB", "#FF37C7"]


def _draw(img: torch.Tensor, boxes: torch.Tensor, masks: torch.Tensor, cls: list[int], scores: list[float],
          names: Sequence[str]) -> torch.Tensor:
    if not boxes.shape[0]:
        return img
    colors = [_PALETTE[c % len(_PALETTE)] for c in cls]
    img = draw_segmentation_masks(img, masks, alpha=0.45, colors=colors)
    labels = [f"{names[c] if c < len(names) else c} {s:.2f}" for c, s in zip(cls, scores)]
    width = max(1, int(round(math.sqrt(img.shape[1] * img.shape[2]) / 300)))
    return draw_bounding_boxes(img, boxes, labels=labels, colors=colors, width=width)


@torch.no_grad()
def predict(
    model: nn.Module,
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    imgsz: int = 640,
    conf_thres: float = 0.25,
    iou_thres: float = 0.45,
    max_det: int = 300,
    names: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    save_images: bool = True,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Detect and segment every image of ``source``; write annotated images and ``predictions.json`` to
    ``out_dir``. Returns the JSON records."""
    check_imgsz(imgsz)
    files = list_images(source)
    out = Path(out_dir)
    if save_images and any(f.parent.resolve() == out.resolve() for f in files):
        raise GradpathError(f"--out {out} is the folder of the source images: annotated images would overwrite them")
    out.mkdir(parents=True, exist_ok=True)
    net = unwrap(model).eval()
    device = torch.device(device) if device is not None else next(net.parameters()).device
    names = list(names) if names else [str(i) for i in range(int(net.num_classes))]
    nm = int(net.head.nm)
    records = []
    for path in tqdm(files, desc="predict", disable=not progress, unit="img"):
        img0 = read_image(path)
        h0, w0 = img0.shape[:2]
        canvas, ratio_pad = letterbox(img0, imgsz)
        x = torch.from_numpy(np.ascontiguousarray(canvas.transpose(2, 0, 1)))[None]
        pred, proto = net(x.to(device).float() / 255.0)
        det = non_max_suppression(pred, conf_thres, iou_thres, max_det=max_det, nm=nm)[0].cpu()
        proto = proto[0].cpu()
        boxes = scale_boxes(det[:, :4].float(), ratio_pad, (h0, w0))
        chunks = list(masks_to_original(proto, det[:, 6:], boxes, (imgsz, imgsz), ratio_pad, (h0, w0)))
        masks = torch.cat(chunks) if chunks else torch.zeros(0, h0, w0, dtype=torch.bool)
        cls = [int(c) for c in det[:, 5].tolist()]
        scores = [float(s) for s in det[:, 4].tolist()]
        rles = encode_masks(masks)
        records.append({
            "file": str(path), "width": int(w0), "height": int(h0),
            "detections": [{"class": c, "name": names[c] if c < len(names) else str(c), "score": round(s, 5),
                            "box": [round(v, 2) for v in b], "segmentation": r}
                           for c, s, b, r in zip(cls, scores, boxes.tolist(), rles)],
        })
        if save_images:
            drawn = _draw(torch.from_numpy(np.ascontiguousarray(img0.transpose(2, 0, 1))), boxes, masks, cls, scores,
                          names)
            suffix = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png") else ".png"
            Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(out / f"{path.stem}{suffix}")
    tmp = out / ".predictions.json.tmp"
    tmp.write_text(json.dumps(records, indent=1))
    tmp.replace(out / "predictions.json")
    return records
