"""scripts/detector_factors.py: class-aware vs class-agnostic AP of saved detections, checked on hand-made ones
whose AP is known (perfect boxes, with the right classes and with the classes swapped)."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import pytest
from pycocotools.coco import COCO

from gradpath.errors import GradpathError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "detector_factors.py"
spec = importlib.util.spec_from_file_location("detector_factors", SCRIPT)
factors = importlib.util.module_from_spec(spec)
spec.loader.exec_module(factors)

# two images, one object each: a "circle" (category 1) and a "square" (category 2)
BOXES = {1: (1, [10, 10, 20, 20]), 2: (2, [30, 5, 15, 25])}


def _gt() -> COCO:
    anns = [{"id": i, "image_id": img, "category_id": cat, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
            for i, (img, (cat, box)) in enumerate(BOXES.items(), 1)]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": [{"id": i, "height": 64, "width": 64} for i in BOXES], "annotations": anns,
                        "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}]}
        coco.createIndex()
    return coco


def _preds(swap: bool) -> list[dict]:
    return [{"image_id": img, "category_id": (3 - cat) if swap else cat, "bbox": box, "score": 0.9}
            for img, (cat, box) in BOXES.items()]


def test_right_classes_score_one_both_ways():
    r = factors.factors(_gt(), _preds(swap=False))
    assert r["bbox"] == pytest.approx({"ap": 1.0, "ap50": 1.0, "agnostic_ap": 1.0, "agnostic_ap50": 1.0})
    assert r["per_class"] == pytest.approx({"circle": 1.0, "square": 1.0})
    assert "segm" not in r  # the detections have no masks


def test_swapped_classes_cost_everything_with_classes_and_nothing_without():
    r = factors.factors(_gt(), _preds(swap=True))
    assert r["bbox"] == pytest.approx({"ap": 0.0, "ap50": 0.0, "agnostic_ap": 1.0, "agnostic_ap50": 1.0})
    assert r["per_class"] == pytest.approx({"circle": 0.0, "square": 0.0})


def test_refuses_files_that_are_not_coco_results(tmp_path):
    bad = tmp_path / "metrics.json"
    bad.write_text(json.dumps({"box": {"map": 0.5}}))
    with pytest.raises(GradpathError, match="not a COCO results list"):
        factors._load(str(bad))
    with pytest.raises(GradpathError, match="cannot read it as JSON"):
        factors._load(str(tmp_path / "missing.json"))
