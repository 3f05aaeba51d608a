"""``gradpath profile MODEL``: parameters, FLOPs, activation memory and latency."""
from __future__ import annotations

import json

from gradpath.checks import check_device, check_imgsz, check_non_negative, check_positive
from gradpath.commands import COMMANDS
from gradpath.commands._model_args import add_model_args, model_from_args
from gradpath.formatting import fmt_num, table
from gradpath.profiling import profile


def add_parser(sub) -> None:
    p = sub.add_parser("profile", help=COMMANDS["profile"][1],
                       description="Profile a registered model. FLOPs = 2 x MACs of conv/linear on the "
                       "BN-folded model; params = the BN-folded (deploy) model; params_weights = conv/linear "
                       "weights only (darknet's count).")
    add_model_args(p)
    p.add_argument("--imgsz", type=int, help="square input size, a multiple of 32 (default: the size the paper "
                   "reports it at)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--iters", type=int, default=5, help="timed latency iterations; 0 skips latency (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed warm-up iterations (default 2)")
    p.add_argument("--device", default=None, help="device for latency: cpu, cuda, cuda:N, N or mps (default: cpu)")
    p.add_argument("--json", action="store_true", help="print the exact numbers as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    # Every option is checked before the model is built, so a mistake costs no build time.
    imgsz = None if args.imgsz is None else check_imgsz(args.imgsz)
    check_positive(args.batch, "--batch")
    check_non_negative(args.iters, "--iters")
    check_non_negative(args.warmup, "--warmup")
    device = None if args.device is None else check_device(args.device)
    model = model_from_args(args)  # latency copies it to --device itself
    res = profile(model, imgsz, batch=args.batch, iters=args.iters, warmup=args.warmup, device=device)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    rows = [
        ["params (deploy, BN folded)", f"{res['params']:,}", f"{res['params'] / 1e6:.3f} M"],
        ["params (conv/linear weights)", f"{res['params_weights']:,}", f"{res['params_weights'] / 1e6:.3f} M"],
        ["params (trainable)", f"{res['params_train']:,}", f"{res['params_train'] / 1e6:.3f} M"],
        ["GMACs", fmt_num(res["gmacs"], 3), ""],
        ["GFLOPs (2 x MACs)", fmt_num(res["gflops"], 3), ""],
        ["activation peak, inference", fmt_num(res["act_mem_infer_mb"], 1), "MiB"],
        ["activation peak, training", fmt_num(res["act_mem_train_mb"], 1), "MiB"],
    ]
    if "latency_ms" in res:
        rows.append([f"latency ({res['latency_device']}, median of {res['latency_iters']})",
                     fmt_num(res["latency_ms"], 2), "ms"])
    print(f"{res['model']} @ {res['imgsz']}x{res['imgsz']}, batch {res['batch']}")
    print(table(["quantity", "value", "unit"], rows, "lrl"))
    return 0
