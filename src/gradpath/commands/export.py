"""``gradpath export --weights W --format onnx|torchscript``: deploy-mode export with a parity check."""
from __future__ import annotations

import json
from pathlib import Path

from gradpath.commands._weights import add_weights_args, load_weights


def add_parser(sub) -> None:
    from gradpath.tasks.segment.export import FORMATS

    p = sub.add_parser("export", help="export a trained detector to ONNX or TorchScript (checked against PyTorch)",
                       description="Fold BN into the convolutions, trace the tensor-only forward at batch 1, write "
                       "the file next to the weights (or --out) and compare its outputs with PyTorch on a random "
                       "image; fails when they differ by more than 1e-3 (relative).")
    add_weights_args(p)
    p.add_argument("--format", required=True, choices=FORMATS, help="onnx or torchscript")
    p.add_argument("--out", help="output file (default: the weights path with .onnx / .torchscript)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from gradpath.tasks.segment.export import export_model

    model, meta, imgsz = load_weights(args)
    out = Path(args.out) if args.out else Path(args.weights).with_suffix(".onnx" if args.format == "onnx" else ".torchscript")
    metadata = {"model": getattr(model, "gradpath_name", type(model).__name__), "imgsz": imgsz,
                "stride": [int(s) for s in model.stride.tolist()], "names": meta["names"] or [],
                "nm": int(model.head.nm), "outputs": "pred (1, N, 5 + nc + nm) decoded; proto (1, nm, S/4, S/4)"}
    res = export_model(model, args.format, out, imgsz=imgsz, metadata=metadata, opset=args.opset)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{res['format']} → {res['path']} (imgsz {imgsz}); parity vs PyTorch: max abs diff "
              f"{res['max_abs_diff']:.2e}, max rel diff {res['max_rel_diff']:.2e}: OK")
    return 0
