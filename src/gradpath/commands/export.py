"""``gradpath export --weights W --format onnx|pt2|torchscript|safetensors``: export with a parity check."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from gradpath.commands import COMMANDS
from gradpath.commands._weights import add_task_args, add_weights_args, load_weights
from gradpath.deploy import FORMATS, ONNX_OPSETS, SUFFIXES
from gradpath.errors import GradpathError

DEFAULT_OPSET = 17
FORMAT_HELP = ("onnx: the deploy graph for onnxruntime (needs pip install 'gradpath[export]'); "
               "pt2: torch.export program (torch.export.load); "
               "torchscript: deprecated by PyTorch 2.14, prefer pt2; "
               "safetensors: trained weights + model name/config/class names/imgsz in the header, no code "
               "(rebuild with gradpath.models.create_model)")


def add_parser(sub) -> None:
    p = sub.add_parser("export", help=COMMANDS["export"][1],
                       description="onnx/pt2/torchscript: fold BN into the convolutions and capture the tensor-only "
                       "forward at batch 1. safetensors: the trained weights and the metadata that rebuilds the "
                       "network, no code. The file is written next to the weights (or --out), read back and run on "
                       "a random image; the export fails when its outputs differ from PyTorch by more than 1e-3 "
                       "(relative). TorchScript is deprecated by PyTorch (2.14): prefer pt2.")
    add_weights_args(p)
    p.add_argument("--format", required=True, choices=FORMATS, help=FORMAT_HELP)
    p.add_argument("--out", help="output file (default: the weights path with "
                   + " / ".join(SUFFIXES[f] for f in FORMATS) + ")")
    p.add_argument("--opset", type=int, help=f"ONNX opset, {ONNX_OPSETS[0]}..{ONNX_OPSETS[-1]} "
                   f"(default {DEFAULT_OPSET}); onnx only")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_task_args(p, "export")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.opset is not None and args.format != "onnx":
        raise GradpathError(f"--opset applies to --format onnx only, not {args.format}")
    args.opset = DEFAULT_OPSET if args.opset is None else args.opset
    out = Path(args.out) if args.out else Path(args.weights).with_suffix(SUFFIXES[args.format])
    if out.resolve() == Path(args.weights).resolve():
        raise GradpathError(f"--out {out} is the weights file itself; choose another path")
    model, ck, commands, imgsz = load_weights(args, "export")
    res = commands.run_export(args, model, ck, imgsz, out)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{res['format']} → {res['path']} (imgsz {imgsz}); parity vs PyTorch: max abs diff "
              f"{res['max_abs_diff']:.2e}, max rel diff {res['max_rel_diff']:.2e}: OK")
    return 0
