"""The segmentation task's part of ``gradpath val``, ``predict`` and ``export``: its options and what it prints.

The commands load the checkpoint, find its task in the registry and hand over here, so the commands themselves
hold nothing particular to detection.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Mapping

from torch import nn
from torch.utils.data import DataLoader

from gradpath.data import build_dataset, collate_fn, load_data_config
from gradpath.deploy import deploy_model, export_model
from gradpath.engine.checkpoint import model_config_dict, plain
from gradpath.checks import check_device, check_imgsz, check_output_path
from gradpath.errors import DataError, GradpathError
from gradpath.formatting import fmt_num, table
from gradpath.tasks.segment.predict import predict
from gradpath.tasks.segment.validate import validate

OUTPUTS = ("pred", "proto")


def add_val_args(p: argparse._ArgumentGroup) -> None:
    p.add_argument("--conf", type=float, default=0.001,
                   help="segment: confidence threshold (default 0.001, as COCO evaluation wants)")
    p.add_argument("--iou", type=float, default=0.6, help="segment: NMS IoU threshold (default 0.6)")
    p.add_argument("--max-det", type=int, default=300, help="segment: detections kept per image (default 300)")
    p.add_argument("--rect", action="store_true", help="segment: rectangular batches (images of similar aspect "
                   "ratio, each batch letterboxed to its own multiple-of-32 canvas, pad 0.5), as YOLOv5 validates")
    p.add_argument("--coco-json", help="segment: score against this official COCO annotation file (e.g. "
                   "instances_val2017.json) instead of the split's own labels, so YOLO-txt labels give numbers "
                   "comparable with the paper's")
    p.add_argument("--save-json", metavar="FILE.json", help="segment: also write the scored detections there, in "
                   "the COCO results format (boxes, RLE masks, scores; original image coordinates), e.g. for "
                   "pycocotools or scripts/detector_factors.py")


def run_val(args: argparse.Namespace, model: nn.Module, ck: Mapping[str, Any], imgsz: int) -> int:
    check_imgsz(imgsz)
    save_json = check_output_path(args.save_json, "--save-json") if args.save_json else None
    try:
        cfg = load_data_config(args.data)
    except DataError as e:  # often classification folders given to a detector: say which kind of model this is
        raise DataError(f"{args.weights} is a detector ({ck['model']['name']}); {e}") from None
    if cfg.nc != model.num_classes:
        raise GradpathError(f"{args.weights} predicts {model.num_classes} classes but {args.data} has {cfg.nc}")
    ds = build_dataset(cfg, split=args.split, imgsz=imgsz, augment=False, rect=args.rect, batch_size=args.batch)
    if len(ds) == 0:
        raise GradpathError(f"the {args.split} split of {args.data} is empty")
    device = check_device(args.device)
    model = deploy_model(model, device)
    loader = DataLoader(ds, batch_size=args.batch, shuffle=False, num_workers=args.workers, collate_fn=collate_fn)
    m = validate(model, loader, ds, device, conf_thres=args.conf, iou_thres=args.iou, max_det=args.max_det,
                 progress=not args.json, coco_json=args.coco_json, keep_predictions=save_json is not None)
    if save_json is not None:
        save_json.parent.mkdir(parents=True, exist_ok=True)
        save_json.write_text(json.dumps(m.pop("predictions")) + "\n")
        if not args.json:
            print(f"detections written to {save_json} (COCO results format)")
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    rows = [["all", sum(c["instances"] for c in m["per_class"])] + [fmt_num(m[k][q], 3) for k in ("box", "mask")
                                                                    for q in ("map50", "map")]]
    for c in m["per_class"]:
        rows.append([c["name"], c["instances"], fmt_num(c["box_map50"], 3), fmt_num(c["box_map"], 3),
                     fmt_num(c["mask_map50"], 3), fmt_num(c["mask_map"], 3)])
    print(f"{args.weights} on {args.data} {args.split} ({m['images']} images, imgsz {imgsz}"
          f"{', rect' if args.rect else ''}, {device})")
    print(table(["class", "instances", "box AP50", "box AP", "mask AP50", "mask AP"], rows, "lrrrrr"))
    sp = m["speed_ms"]
    print(f"speed per image: {sp['inference']:.1f} ms inference, {sp['nms']:.1f} ms NMS")
    print(f"box mAP50={m['box']['map50']:.3f} mask mAP50={m['mask']['map50']:.3f}")
    return 0


def add_predict_args(p: argparse._ArgumentGroup) -> None:
    p.add_argument("--conf", type=float, default=0.25, help="segment: confidence threshold (default 0.25)")
    p.add_argument("--iou", type=float, default=0.45, help="segment: NMS IoU threshold (default 0.45)")
    p.add_argument("--max-det", type=int, default=300, help="segment: detections kept per image (default 300)")


def run_predict(args: argparse.Namespace, model: nn.Module, ck: Mapping[str, Any], imgsz: int) -> int:
    device = check_device(args.device)
    recs = predict(deploy_model(model, device), args.source, args.out, imgsz=imgsz, conf_thres=args.conf,
                   iou_thres=args.iou, max_det=args.max_det, names=(ck.get("meta") or {}).get("names"),
                   device=device, save_images=not args.no_images)
    n = sum(len(r["detections"]) for r in recs)
    print(f"{len(recs)} images, {n} detections → {Path(args.out) / 'predictions.json'}")
    return 0


def export_metadata(model: nn.Module, ck: Mapping[str, Any], imgsz: int) -> dict[str, Any]:
    """What a user of an exported file needs: the class names, input size and output layout, and the registered
    model name with its resolved config, which rebuild the network from a safetensors file."""
    return {"task": "segment", "model": model.gradpath_name, "config": plain(model_config_dict(model)),
            "imgsz": imgsz, "stride": [int(s) for s in model.stride.tolist()],
            "names": (ck.get("meta") or {}).get("names") or [], "nm": int(model.head.nm),
            "outputs": "pred (1, N, 5 + nc + nm) decoded; proto (1, nm, S/4, S/4)"}


def run_export(args: argparse.Namespace, model: nn.Module, ck: Mapping[str, Any], imgsz: int, out: Path) -> dict:
    check_imgsz(imgsz)
    return export_model(model, args.format, out, imgsz=imgsz, metadata=export_metadata(model, ck, imgsz),
                        opset=args.opset, output_names=OUTPUTS)
