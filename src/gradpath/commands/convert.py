"""``gradpath convert --from yolov5|yolov7 CKPT -o OUT``: another code base's weights → a gradpath checkpoint."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from gradpath.checks import check_imgsz
from gradpath.commands import COMMANDS
from gradpath.engine.checkpoint import make_checkpoint, save_checkpoint
from gradpath.errors import GradpathError
from gradpath.models.convert_yolov5 import load_yolov5_seg
from gradpath.models.convert_yolov7 import load_yolov7_seg

#: --from → the loader of a file saved by that code base
LOADERS = {"yolov5": load_yolov5_seg, "yolov7": load_yolov7_seg}
SOURCES = tuple(LOADERS)


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help=COMMANDS["convert"][1],
                       description="yolov5: a YOLOv5 v7.0 segmentation state dict (yolov5n/s/m/l/x-seg, any class "
                       "count) becomes a gradpath yolov5l-seg (yolov5x-seg at x scale) checkpoint of task segment; "
                       "width, depth and classes are read from the tensor shapes. yolov7: a YOLOv7 yolov7-seg state "
                       "dict (the u7 branch's seg/, any class count) becomes a gradpath yolor-elan checkpoint; only "
                       "the class count may differ from yolov7-seg.yaml. Either is read by `gradpath val/predict/"
                       "export --weights`. Every tensor is placed by name, and a key that is not placed or not found "
                       "is an error. The file is read with torch.load(weights_only=True): the code bases' own .pt "
                       "files pickle their model objects, and the error says how to export their plain state dict "
                       "first.")
    p.add_argument("checkpoint", help="the YOLOv5 or YOLOv7 state dict (.pt): a plain state dict or a dict whose "
                   "'ema' or 'model' holds one")
    p.add_argument("--from", dest="source", required=True, choices=SOURCES, help="the code base it was saved by")
    p.add_argument("-o", "--out", required=True, help="the gradpath checkpoint to write (e.g. yolov5s-seg.gp.pt, "
                   "yolov7-seg.gp.pt)")
    p.add_argument("--names", nargs="+", help="class names, one per class (default: 0, 1, ...)")
    p.add_argument("--imgsz", type=int, default=640, help="input size stored in the checkpoint, the default of "
                   "val/predict (default 640, the training size of YOLOv5-seg and yolov7-seg)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    src, out = Path(args.checkpoint), Path(args.out)
    if out.resolve() == src.resolve():
        raise GradpathError(f"--out {out} is the checkpoint being converted; choose another path")
    imgsz = check_imgsz(args.imgsz)
    model = LOADERS[args.source](src)
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
