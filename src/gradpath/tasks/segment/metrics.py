"""COCO box and mask AP with the official evaluator (pycocotools ``COCOeval``).

The paper reports AP, AP50, AP75 (box and mask) on COCO val (Tables 6-8); those are ``stats[0..2]`` of
COCOeval with ``iouType="bbox"`` and ``"segm"``. Per-class AP is read from the same run's precision table
(``eval["precision"][T, R, K, A, M]``: all areas, maxDets 100), averaging only entries COCOeval filled (> -1),
which is how its summary computes the overall AP.
"""
from __future__ import annotations

import contextlib
import io
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["evaluate_coco", "empty_metrics"]


def _zeros() -> dict[str, float]:
    return {"map": 0.0, "map50": 0.0, "map75": 0.0}


def empty_metrics() -> dict[str, Any]:
    """The metrics dict when there is nothing to score (no predictions): every AP is 0."""
    return {"box": _zeros(), "mask": _zeros(), "per_class": []}


def _per_class_ap(ev) -> dict[int, tuple[float | None, float | None]]:
    """category id → (AP@[.5:.95], AP@.5); ``None`` when the class has no ground truth in the evaluated images."""
    prec = ev.eval["precision"]  # (T, R, K, A, M)
    a = list(ev.params.areaRngLbl).index("all")
    m = int(np.argmax(np.asarray(ev.params.maxDets)))
    out = {}
    for k, cat in enumerate(ev.params.catIds):
        p = prec[:, :, k, a, m]
        p50 = p[0]
        ap = float(p[p > -1].mean()) if (p > -1).any() else None
        ap50 = float(p50[p50 > -1].mean()) if (p50 > -1).any() else None
        out[int(cat)] = (ap, ap50)
    return out


def _pr_curve(ev, names: dict[int, str]) -> dict[str, Any]:
    """Precision at IoU 0.5 over COCOeval's 101 recall thresholds: per class and the class mean (only the
    entries COCOeval filled), for the PR-curve plot."""
    prec = ev.eval["precision"]
    a = list(ev.params.areaRngLbl).index("all")
    m = int(np.argmax(np.asarray(ev.params.maxDets)))
    curves = {}
    for k, cat in enumerate(ev.params.catIds):
        p = prec[0, :, k, a, m]
        if (p > -1).any():
            curves[names.get(int(cat), str(cat))] = [max(float(v), 0.0) for v in p]
    if curves:
        curves["all classes"] = [float(v) for v in np.mean(np.asarray(list(curves.values())), 0)]
    return {"recall": [float(r) for r in ev.params.recThrs], "precision": curves}


def _run(coco_gt, coco_dt, iou_type: str, img_ids: Sequence[int] | None, verbose: bool):
    from pycocotools.cocoeval import COCOeval

    ev = COCOeval(coco_gt, coco_dt, iou_type)
    if img_ids is not None:
        ev.params.imgIds = sorted(int(i) for i in img_ids)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf) if not verbose else contextlib.nullcontext():
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = [max(float(v), 0.0) for v in ev.stats[:3]]  # -1 (no gt at all) reads as 0
    names = {c["id"]: c.get("name", str(c["id"])) for c in coco_gt.loadCats(coco_gt.getCatIds())}
    return {"map": s[0], "map50": s[1], "map75": s[2]}, _per_class_ap(ev), _pr_curve(ev, names)


def evaluate_coco(
    coco_gt,
    predictions: list[dict],
    img_ids: Iterable[int] | None = None,
    class_to_category: Sequence[int] | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Box and mask AP of ``predictions`` (COCO results format) against ``coco_gt`` (a ``pycocotools.coco.COCO``).

    Each prediction: ``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``score`` and, for mask AP,
    ``segmentation`` (RLE; ``counts`` as str or bytes). ``img_ids`` restricts the evaluation to those images (the
    ones actually run); default: every image of ``coco_gt``. ``class_to_category`` maps contiguous class ids to
    category ids, giving the ``class`` field of ``per_class`` (default: the rank of the category id).

    Returns ``{"box": {"map", "map50", "map75"}, "mask": {...} | None, "per_class": [...]}``; ``mask`` is None
    when the predictions carry no segmentation. With no predictions every AP is 0. With predictions, ``pr_curve``
    holds precision at IoU 0.5 over COCOeval's recall thresholds, per class and averaged (for the PR plot).
    """
    img_ids = None if img_ids is None else sorted({int(i) for i in img_ids})
    cats = sorted(coco_gt.getCatIds())
    if class_to_category is None:
        class_to_category = cats
    names = {c["id"]: c.get("name", str(c["id"])) for c in coco_gt.loadCats(cats)}
    has_mask = bool(predictions) and all("segmentation" in p for p in predictions)
    n_inst = _instances(coco_gt, img_ids)
    if not predictions:
        res = empty_metrics()
        box_pc = mask_pc = {c: ((0.0, 0.0) if n_inst.get(c) else (None, None)) for c in cats}
    else:
        # loadRes adds top-level keys (area, id) and needs bytes RLE counts: copy those levels only, not every
        # mask (a deep copy of up to 300 RLEs per image was the slow part of evaluation)
        preds = []
        for p in predictions:
            p = dict(p)
            seg = p.get("segmentation")
            if isinstance(seg, dict) and isinstance(seg.get("counts"), str):
                p["segmentation"] = {**seg, "counts": seg["counts"].encode("ascii")}
            preds.append(p)
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco_gt.loadRes(preds)
        box, box_pc, box_pr = _run(coco_gt, coco_dt, "bbox", img_ids, verbose)
        mask, mask_pc, mask_pr = (None, {}, None)
        if has_mask:
            mask, mask_pc, mask_pr = _run(coco_gt, coco_dt, "segm", img_ids, verbose)
        res = {"box": box, "mask": mask, "per_class": [], "pr_curve": {"box": box_pr, "mask": mask_pr}}
    for cls, cat in enumerate(class_to_category):
        cat = int(cat)
        bap, bap50 = box_pc.get(cat, (None, None))
        map_, map50 = mask_pc.get(cat, (None, None))
        res["per_class"].append({
            "class": cls, "category_id": cat, "name": names.get(cat, str(cat)),
            "instances": n_inst.get(cat, 0),
            "box_map": bap, "box_map50": bap50, "mask_map": map_, "mask_map50": map50,
        })
    return res


def _instances(coco_gt, img_ids: Sequence[int] | None) -> dict[int, int]:
    """Non-crowd ground-truth instances per category id (in the evaluated images)."""
    ann_ids = coco_gt.getAnnIds(imgIds=img_ids if img_ids is not None else [])
    out: dict[int, int] = {}
    for ann in coco_gt.loadAnns(ann_ids):
        if not ann.get("iscrowd", 0):
            out[ann["category_id"]] = out.get(ann["category_id"], 0) + 1
    return out
