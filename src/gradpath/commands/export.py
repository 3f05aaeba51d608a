"""``gradpath export --weights W --format onnx|torchscript``: deploy-mode export with a parity check."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from gradpath.commands._weights import add_task_args, add_weights_args, load_weights
from gradpath.deploy import FORMATS

SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript"}


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a trained model to ONNX or TorchScript (checked against PyTorch)",
                       description="Fold BN into the convolutions, trace the tensor-only forward at batch 1, write "
                       "the file next to the weights (or --out) and compare its outputs with PyTorch on a random "
                       "image; fails when they differ by more than 1e-3 (relative).")
    add_weights_args(p)
    p.add_argument("--format", required=True, choices=FORMATS, help=" or ".join(FORMATS))
    p.add_argument("--out", help="output file (default: the weights path with .onnx / .torchscript)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_task_args(p, "export")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model, ck, commands, imgsz = load_weights(args, "export")
    out = Path(args.out) if args.out else Path(args.weights).with_suffix(SUFFIX[args.format])
    res = commands.run_export(args, model, ck, imgsz, out)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{res['format']} → {res['path']} (imgsz {imgsz}); parity vs PyTorch: max abs diff "
              f"{res['max_abs_diff']:.2e}, max rel diff {res['max_rel_diff']:.2e}: OK")
    return 0
