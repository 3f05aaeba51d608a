"""evaluate_coco against pycocotools' own COCOeval on hand-made ground truth and predictions."""
from __future__ import annotations

import contextlib
import copy
import io
import math
import random

import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from gradpath.tasks.segment import evaluate_coco

H = W = 100


def _rect_poly(x, y, w, h):
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _rle(box):
    rle = mask_utils.merge(mask_utils.frPyObjects(_rect_poly(*box), H, W))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


GT_BOXES = {1: (1, 1, [10, 10, 30, 20]), 2: (1, 5, [50, 50, 40, 40]), 3: (2, 1, [20, 30, 40, 30])}
CROWD = (4, 2, 5, [60, 0, 40, 40])


def _coco_gt():
    anns = []
    for aid, (img, cat, box) in GT_BOXES.items():
        anns.append({"id": aid, "image_id": img, "category_id": cat, "bbox": box, "area": box[2] * box[3],
                     "iscrowd": 0, "segmentation": _rect_poly(*box)})
    aid, img, cat, box = CROWD
    anns.append({"id": aid, "image_id": img, "category_id": cat, "bbox": box, "area": box[2] * box[3],
                 "iscrowd": 1, "segmentation": _rect_poly(*box)})
    ds = {"images": [{"id": i, "width": W, "height": H, "file_name": f"{i}.png"} for i in (1, 2)],
          "categories": [{"id": 1, "name": "square"}, {"id": 5, "name": "circle"}], "annotations": anns}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = ds
        coco.createIndex()
    return coco


def _pred(img, cat, box, score):
    return {"image_id": img, "category_id": cat, "bbox": list(map(float, box)), "score": score,
            "segmentation": _rle(box)}


def _direct(coco_gt, preds, iou_type):
    """pycocotools used the documented way: loadRes, evaluate, accumulate, summarize → stats[0:3]."""
    with contextlib.redirect_stdout(io.StringIO()):
        dt = coco_gt.loadRes(copy.deepcopy(preds))
        ev = COCOeval(coco_gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[:3].tolist()


def test_perfect_predictions_give_ap_one():
    gt = _coco_gt()
    preds = [_pred(img, cat, box, 0.9) for img, cat, box in GT_BOXES.values()]
    preds.append(_pred(2, 5, [65, 5, 20, 20], 0.95))  # inside the crowd region: ignored, not a false positive
    m = evaluate_coco(gt, preds)
    for kind in ("box", "mask"):
        assert m[kind] == {"map": 1.0, "map50": 1.0, "map75": 1.0}
    assert [(c["name"], c["instances"]) for c in m["per_class"]] == [("square", 2), ("circle", 1)]
    for c in m["per_class"]:
        assert [c["box_map"], c["box_map50"], c["mask_map"], c["mask_map50"]] == pytest.approx([1.0] * 4, abs=1e-12)


def test_hand_computed_per_class_ap():
    """'square' (2 gt): TP 0.9, FP 0.8, TP 0.7 → precision 1 up to recall .5, then 2/3 → 101-point AP
    (51·1 + 50·2/3) / 101; 'circle' perfect. Boxes are exact, so AP = AP50 = AP75."""
    gt = _coco_gt()
    preds = [_pred(1, 1, [10, 10, 30, 20], 0.9), _pred(2, 1, [70, 70, 20, 20], 0.8),
             _pred(2, 1, [20, 30, 40, 30], 0.7), _pred(1, 5, [50, 50, 40, 40], 0.9)]
    m = evaluate_coco(gt, preds, class_to_category=[5, 1])
    ap_sq = (51 + 50 * 2 / 3) / 101
    by_name = {c["name"]: c for c in m["per_class"]}
    assert by_name["square"]["class"] == 1 and by_name["circle"]["class"] == 0
    assert math.isclose(by_name["square"]["box_map"], ap_sq, rel_tol=1e-9)
    assert math.isclose(by_name["square"]["mask_map50"], ap_sq, rel_tol=1e-9)
    assert by_name["circle"]["box_map"] == pytest.approx(1.0, abs=1e-12)
    for kind, iou_type in (("box", "bbox"), ("mask", "segm")):
        assert math.isclose(m[kind]["map"], (ap_sq + 1) / 2, rel_tol=1e-9)
        assert [m[kind]["map"], m[kind]["map50"], m[kind]["map75"]] == _direct(gt, preds, iou_type)


def test_noisy_predictions_equal_pycocotools():
    rnd = random.Random(0)
    gt = _coco_gt()
    preds = []
    for img, cat, (x, y, w, h) in GT_BOXES.values():
        for _ in range(4):
            box = [x + rnd.uniform(-6, 6), y + rnd.uniform(-6, 6), w * rnd.uniform(0.7, 1.3), h * rnd.uniform(0.7, 1.3)]
            box = [max(0.0, box[0]), max(0.0, box[1]), box[2], box[3]]
            preds.append(_pred(img, rnd.choice([1, 5]) if rnd.random() < 0.3 else cat, box, rnd.random()))
    m = evaluate_coco(gt, preds)
    for kind, iou_type in (("box", "bbox"), ("mask", "segm")):
        ours = [m[kind]["map"], m[kind]["map50"], m[kind]["map75"]]
        assert ours == _direct(gt, preds, iou_type)
        assert 0.0 < ours[0] < 1.0
    # restricting to one image equals pycocotools with params.imgIds set
    m1 = evaluate_coco(gt, preds, img_ids=[1])
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(copy.deepcopy(preds)), "bbox")
        ev.params.imgIds = [1]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert m1["box"]["map"] == pytest.approx(ev.stats[0], abs=0) and m1["box"]["map"] != m["box"]["map"]


def test_no_predictions_and_boxes_only():
    gt = _coco_gt()
    m = evaluate_coco(gt, [])
    assert m["box"]["map"] == 0.0 and m["mask"]["map50"] == 0.0
    assert [c["box_map"] for c in m["per_class"]] == [0.0, 0.0]
    preds = [{k: v for k, v in _pred(img, cat, box, 0.9).items() if k != "segmentation"}
             for img, cat, box in GT_BOXES.values()]
    m = evaluate_coco(gt, preds)
    assert m["box"]["map"] == 1.0 and m["mask"] is None


def test_pr_curve_hand_computed_and_plotted(tmp_path):
    """Same case as above: 'square' precision is 1 up to recall 0.5 (51 thresholds), then 2/3; 'circle' is 1."""
    from gradpath.tasks.segment.plots import plot_pr_curves, pr_curves_figure

    gt = _coco_gt()
    preds = [_pred(1, 1, [10, 10, 30, 20], 0.9), _pred(2, 1, [70, 70, 20, 20], 0.8),
             _pred(2, 1, [20, 30, 40, 30], 0.7), _pred(1, 5, [50, 50, 40, 40], 0.9)]
    pr = evaluate_coco(gt, preds)["pr_curve"]
    for kind in ("box", "mask"):
        cur = pr[kind]
        assert len(cur["recall"]) == 101 and cur["recall"][50] == pytest.approx(0.5)
        sq = cur["precision"]["square"]
        assert sq[:51] == pytest.approx([1.0] * 51) and sq[51:] == pytest.approx([2 / 3] * 50)
        assert cur["precision"]["circle"] == pytest.approx([1.0] * 101)
        assert cur["precision"]["all classes"] == pytest.approx([(a + 1) / 2 for a in sq])
    fig = pr_curves_figure(pr)
    assert [ax.get_title() for ax in fig.axes] == ["box PR @ IoU 0.5", "mask PR @ IoU 0.5"]
    for ax in fig.axes:  # a line per class and the class mean, each labelled with its AP50 (hand values)
        labels = sorted(ln.get_label() for ln in ax.get_lines())
        assert labels == ["all classes 0.917", "circle 1.000", "square 0.835"]  # (51 + 50 * 2/3) / 101 = 0.835
        mean = next(ln for ln in ax.get_lines() if ln.get_label().startswith("all classes"))
        assert list(mean.get_ydata()) == pytest.approx(pr["box"]["precision"]["all classes"])
    out = plot_pr_curves(pr, tmp_path / "pr.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
