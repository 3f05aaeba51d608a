"""``gradpath convert --from yolov5 CKPT -o OUT``: another code base's trained weights → a gradpath checkpoint."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from gradpath.checks import check_imgsz
from gradpath.commands import COMMANDS
from gradpath.engine.checkpoint import make_checkpoint, save_checkpoint
from gradpath.errors import GradpathError
from gradpath.models.convert_yolov5 import load_yolov5_seg

SOURCES = ("yolov5",)


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help=COMMANDS["convert"][1],
                       description="yolov5: a YOLOv5 v7.0 segmentation state dict (yolov5n/s/m/l/x-seg, any class "
                       "count) becomes a gradpath yolov5l-seg (yolov5x-seg at x scale) checkpoint of task segment, "
                       "read by `gradpath val/predict/export --weights`. Width, depth and classes are read from the "
                       "tensor shapes; every tensor is placed by name, and a key that is not placed or not found is "
                       "an error. The file is read with torch.load(weights_only=True): YOLOv5's own .pt files pickle "
                       "its model objects, and the error says how to export their plain state dict first.")
    p.add_argument("checkpoint", help="the YOLOv5 state dict (.pt): a plain state dict or a dict whose 'ema' or "
                   "'model' holds one")
    p.add_argument("--from", dest="source", required=True, choices=SOURCES, help="the code base it was saved by")
    p.add_argument("-o", "--out", required=True, help="the gradpath checkpoint to write (e.g. yolov5s-seg.gp.pt)")
    p.add_argument("--names", nargs="+", help="class names, one per class (default: 0, 1, ...)")
    p.add_argument("--imgsz", type=int, default=640, help="input size stored in the checkpoint, the default of "
                   "val/predict (default 640, YOLOv5-seg's training size)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    src, out = Path(args.checkpoint), Path(args.out)
    if out.resolve() == src.resolve():
        raise GradpathError(f"--out {out} is the checkpoint being converted; choose another path")
    imgsz = check_imgsz(args.imgsz)
    model = load_yolov5_seg(src)
    nc = int(model.num_classes)
    names = list(args.names) if args.names else [str(i) for i in range(nc)]
    if len(names) != nc:
        raise GradpathError(f"--names gives {len(names)} names but {src} predicts {nc} classes")
    ck = make_checkpoint(model, task="segment", task_options={"imgsz": imgsz},
                         meta={"names": names, "imgsz": imgsz, "converted_from": f"{args.source}:{src.name}"})
    save_checkpoint(out, ck)
    cfg = ck["model"]["config"]
    res = {"source": args.source, "checkpoint": str(src), "out": str(out), "model": ck["model"]["name"],
           "width": cfg["width"], "depth": cfg["depth"], "num_classes": nc, "tensors": len(ck["weights"])}
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{src} ({args.source}) → {out}: {res['model']} width={res['width']} depth={res['depth']} "
              f"classes={nc}, {res['tensors']} tensors")
    return 0
