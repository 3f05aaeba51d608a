"""Validation: run the detector over a split, map detections back to the original images, score with COCOeval.

Detections are kept at ``conf_thres=0.001`` and multi-label NMS, as in the YOLOv5-seg evaluation the paper's
tables come from (paper §5.1); boxes and masks are converted to original image coordinates before scoring, so
the numbers are comparable with any other COCO evaluation of the same split.

``coco_json`` scores against an official annotation file instead of the split's own labels — the way to get
numbers comparable with the paper's when training labels are YOLO txt: images are matched by file name (or a
numeric file stem, COCO's convention), classes by rank of the file's category ids (COCO's 80 classes in id
order, the ``coco80_to_91`` map of YOLOv5).

Under ``torch.distributed`` each rank runs its shard; predictions are gathered with ``all_gather_object`` and
every rank computes the same metrics (no rank waits on another that skipped evaluation). Images repeated by a
padding sampler are scored once.
"""
from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.distributed as dist
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from torch import nn
from tqdm import tqdm

from gradpath.data.coco import read_coco_json
from gradpath.engine.utils import unwrap
from gradpath.errors import GradpathError
from gradpath.tasks.segment.metrics import evaluate_coco
from gradpath.tasks.segment.postprocess import masks_to_original, non_max_suppression, scale_boxes

__all__ = ["validate", "detections_to_coco", "encode_masks", "official_ground_truth"]


def encode_masks(masks: torch.Tensor) -> list[dict]:
    """Bool masks (n, h, w) → COCO RLE dicts with ``counts`` as str (JSON-serialisable)."""
    if not masks.shape[0]:
        return []
    # (n, w, h) C-contiguous, transposed, is the (h, w, n) Fortran-ordered uint8 array pycocotools wants: one copy
    arr = masks.transpose(1, 2).contiguous().cpu().numpy().view(np.uint8).transpose(2, 1, 0)
    rles = mask_utils.encode(arr)
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def detections_to_coco(
    det: torch.Tensor,
    proto: torch.Tensor,
    image_id: int,
    canvas_shape: tuple[int, int],
    orig_shape: tuple[int, int],
    ratio_pad,
    class_to_category: list[int],
    with_masks: bool = True,
) -> list[dict]:
    """One image's NMS output (n, 6 + nm) → COCO result dicts in original image coordinates."""
    if not det.shape[0]:
        return []
    boxes = scale_boxes(det[:, :4].float(), ratio_pad, orig_shape)
    rles: list[dict] = []
    if with_masks:
        for chunk in masks_to_original(proto, det[:, 6:], boxes, canvas_shape, ratio_pad, orig_shape):
            rles.extend(encode_masks(chunk))
    xywh = boxes.clone()
    xywh[:, 2:] -= xywh[:, :2]
    out = []
    for k, (b, s, c) in enumerate(zip(xywh.tolist(), det[:, 4].tolist(), det[:, 5].tolist())):
        p = {"image_id": int(image_id), "category_id": int(class_to_category[int(c)]),
             "bbox": [round(v, 3) for v in b], "score": round(float(s), 5)}
        if with_masks:
            p["segmentation"] = rles[k]
        out.append(p)
    return out


def official_ground_truth(coco_json: str | os.PathLike, dataset) -> tuple[COCO, dict[int, int], list[int]]:
    """``(COCO ground truth, dataset image id -> official image id, class -> official category id)`` for
    scoring ``dataset``'s predictions against an official annotation file; a mismatch is a one-line error."""
    path = Path(coco_json)
    data = read_coco_json(path)
    cats = sorted(c["id"] for c in data["categories"] if isinstance(c, dict) and "id" in c)
    nc = len(dataset.class_to_category)
    if len(cats) != nc:
        raise GradpathError(f"{path}: has {len(cats)} categories but the model's dataset has {nc} classes")
    by_name: dict[str, int] = {}
    ids = set()
    for im in data["images"]:
        if isinstance(im, dict) and "id" in im:
            ids.add(im["id"])
            if isinstance(im.get("file_name"), str):
                by_name[Path(im["file_name"]).name] = im["id"]
    id_map = {}
    for rec in dataset.records:
        name, stem = rec.file.name, rec.file.stem
        official = by_name.get(name, int(stem) if stem.isdigit() and int(stem) in ids else None)
        if official is None:
            raise GradpathError(f"{path}: no image named {name} (nor with id {stem}) for {rec.file}")
        id_map[int(rec.image_id)] = int(official)
    gt = COCO()
    gt.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt.createIndex()
    return gt, id_map, cats


def _gather(per_image: dict[int, list[dict]]) -> dict[int, list[dict]]:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return per_image
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, per_image)
    merged: dict[int, list[dict]] = {}
    for part in parts:
        for img_id, preds in part.items():
            merged.setdefault(img_id, preds)  # a padded sampler repeats images: keep one copy
    return merged


@torch.no_grad()
def validate(
    model: nn.Module,
    dataloader: Iterable[dict],
    dataset,
    device: torch.device | str | None = None,
    conf_thres: float = 0.001,
    iou_thres: float = 0.6,
    max_det: int = 300,
    progress: bool = True,
    desc: str = "val",
    coco_json: str | os.PathLike | None = None,
    keep_predictions: bool = False,
) -> dict[str, Any]:
    """COCO box/mask AP of ``model`` on ``dataloader`` (batches from ``gradpath.data.collate_fn``).

    ``dataset`` provides ``coco_gt()`` and ``class_to_category``. The model is run in eval mode and restored to
    its previous mode afterwards. Returns ``{"box", "mask", "per_class", "speed_ms", "images"}``; ``speed_ms``
    is per image: ``inference`` (forward) and ``nms``. ``coco_json``: score against that annotation file
    (see the module docstring) instead of ``dataset.coco_gt()``. ``keep_predictions``: also return the scored
    detections as ``"predictions"`` (COCO result dicts, original image coordinates), for ``val --save-json``.
    """
    net = unwrap(model)
    was_training = net.training
    net.eval()
    if device is None:
        device = next(net.parameters()).device
    device = torch.device(device)
    nm = int(net.head.nm)
    class_to_category = list(dataset.class_to_category)
    id_map: dict[int, int] = {}
    if coco_json is not None:  # before the forward passes: a mismatch fails fast
        coco_gt, id_map, class_to_category = official_ground_truth(coco_json, dataset)
    per_image: dict[int, list[dict]] = {}
    t_inf = t_nms = 0.0
    n_img = 0
    try:
        bar = tqdm(dataloader, desc=desc, disable=not progress, leave=False, unit="batch")
        for batch in bar:
            img = batch["img"].to(device, non_blocking=True).float() / 255.0
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            pred, proto = net(img)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t1 = time.perf_counter()
            dets = non_max_suppression(pred, conf_thres, iou_thres, max_det=max_det, nm=nm, multi_label=True)
            t2 = time.perf_counter()
            t_inf += t1 - t0
            t_nms += t2 - t1
            canvas = tuple(img.shape[2:])
            for k, det in enumerate(dets):
                image_id = int(batch["image_ids"][k])
                image_id = id_map.get(image_id, image_id)
                per_image[image_id] = detections_to_coco(
                    det, proto[k], image_id, canvas, tuple(batch["orig_shapes"][k]), batch["ratio_pads"][k],
                    class_to_category,
                )
            n_img += img.shape[0]
    finally:
        net.train(was_training)
    per_image = _gather(per_image)
    preds = [p for img_id in sorted(per_image) for p in per_image[img_id]]
    gt = coco_gt if coco_json is not None else dataset.coco_gt()
    metrics = evaluate_coco(gt, preds, img_ids=list(per_image),
                            class_to_category=class_to_category)
    if metrics["mask"] is None:
        metrics["mask"] = {"map": 0.0, "map50": 0.0, "map75": 0.0}
    metrics["images"] = len(per_image)
    if keep_predictions:
        metrics["predictions"] = preds
    metrics["speed_ms"] = {"inference": 1000 * t_inf / max(n_img, 1), "nms": 1000 * t_nms / max(n_img, 1)}
    return metrics
