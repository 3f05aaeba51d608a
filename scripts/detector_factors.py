"""Is a detector's gap to another one in telling the classes apart, or in finding and outlining the objects?

Why: the seeds of one detection recipe on ``shapes`` end 5-7 box AP apart. If the weak seeds confused the shapes
(as the weak classifiers of ``shapes-cls`` 2 confused one fill pattern), scoring without classes would close the
gap; if it stays, the weak seeds localise worse. This scores each run twice with pycocotools' COCOeval on the
detections ``gradpath val --save-json`` wrote: with classes (the usual AP) and class-agnostic (``useCats = 0``:
any detection may match any object). The difference is what class confusion costs a run. Per-class AP shows
whether the gap sits in one class.

    gradpath val --weights runs/.../seed0/weights/best.pt --data shapes --save-json seed0.json
    python scripts/detector_factors.py --data shapes seed0.json seed1.json
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

from pycocotools.cocoeval import COCOeval

from gradpath.data import build_dataset, load_data_config
from gradpath.errors import GradpathError

IOU_TYPES = ("bbox", "segm")


def _evaluate(gt, preds: list[dict[str, Any]], iou_type: str, use_cats: bool) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        ev = COCOeval(gt, gt.loadRes(preds), iou_type)
        ev.params.imgIds = sorted(gt.getImgIds())
        ev.params.useCats = int(use_cats)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _class_ap(ev: COCOeval, k: int) -> float | None:
    """AP@[.5:.95] of category index ``k``: the entries of COCOeval's precision table it filled (all areas,
    maxDets 100), as ``gradpath val`` computes it."""
    p = ev.eval["precision"][:, :, k, 0, -1]
    p = p[p > -1]
    return float(p.mean()) if p.size else None


def factors(gt, preds: list[dict[str, Any]]) -> dict[str, Any]:
    """Class-aware and class-agnostic AP and AP50 for boxes (and masks when the detections have them), and box AP
    per class. Values in [0, 1]."""
    out: dict[str, Any] = {}
    types = IOU_TYPES if preds and all("segmentation" in p for p in preds) else IOU_TYPES[:1]
    for iou_type in types:
        if not preds:
            out[iou_type] = {"ap": 0.0, "ap50": 0.0, "agnostic_ap": 0.0, "agnostic_ap50": 0.0}
            continue
        aware = _evaluate(gt, preds, iou_type, True)
        agnostic = _evaluate(gt, preds, iou_type, False)
        out[iou_type] = {"ap": float(aware.stats[0]), "ap50": float(aware.stats[1]),
                         "agnostic_ap": float(agnostic.stats[0]), "agnostic_ap50": float(agnostic.stats[1])}
        if iou_type == "bbox":
            out["per_class"] = {gt.cats[c]["name"]: _class_ap(aware, k) for k, c in enumerate(aware.params.catIds)}
    return out


def _load(path: str) -> list[dict[str, Any]]:
    try:
        preds = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise GradpathError(f"{path}: cannot read it as JSON ({e})") from None
    if not isinstance(preds, list) or not all(isinstance(p, dict) and {"image_id", "category_id", "bbox", "score"}
                                              <= p.keys() for p in preds):
        raise GradpathError(f"{path}: not a COCO results list (write it with `gradpath val --save-json`)")
    return preds


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="the dataset the detections are of (`shapes` or a data yaml)")
    ap.add_argument("--split", default="val", choices=["val", "train"], help="its split (default val)")
    ap.add_argument("--json", action="store_true", help="print the numbers as JSON")
    ap.add_argument("predictions", nargs="+", help="`gradpath val --save-json` files, one a run")
    args = ap.parse_args(argv)
    try:
        gt = build_dataset(load_data_config(args.data), split=args.split, imgsz=64, augment=False).coco_gt()
        results = {f: factors(gt, _load(f)) for f in args.predictions}
    except GradpathError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    names = [gt.cats[c]["name"] for c in sorted(gt.cats)]
    print(f"{'file':<36}{'box AP':>8}{'agnostic':>10}{'AP50':>7}{'agnostic':>10}{'mask AP':>9}{'agnostic':>10}"
          + "".join(f"{n[:10]:>11}" for n in names))
    for f, r in results.items():
        m = r.get("segm", {})
        print(f"{Path(f).name[:35]:<36}{_pct(r['bbox']['ap']):>8}{_pct(r['bbox']['agnostic_ap']):>10}"
              f"{_pct(r['bbox']['ap50']):>7}{_pct(r['bbox']['agnostic_ap50']):>10}{_pct(m.get('ap')):>9}"
              f"{_pct(m.get('agnostic_ap')):>10}" + "".join(f"{_pct(r.get('per_class', {}).get(n)):>11}"
                                                            for n in names))
    print("AP = box/mask AP@[.5:.95] (%), agnostic = the same with any detection allowed to match any object "
          "(COCOeval useCats=0); per class: box AP")
    return 0


if __name__ == "__main__":
    sys.exit(main())
