"""``gradpath profile MODEL``: parameters, FLOPs, activation memory and latency."""
from __future__ import annotations

import json

from gradpath.commands._format import fmt_num, table


def parse_overrides(items: list[str] | None) -> dict:
    """``key=value`` pairs → dict; values parsed as YAML scalars/lists (safe_load), e.g. ``elan_stack=[2,1]``."""
    import yaml

    from gradpath.errors import GradpathError

    out = {}
    for item in items or []:
        if "=" not in item:
            raise GradpathError(f"override {item!r} must look like key=value")
        k, v = item.split("=", 1)
        val = yaml.safe_load(v)
        out[k.strip()] = tuple(val) if isinstance(val, list) else val
    return out


def add_model_args(p, optional: bool = False) -> None:
    """Arguments shared by commands that build a model from the registry (``optional``: MODEL may be omitted,
    for commands that can take the network from elsewhere)."""
    p.add_argument("model", nargs="?" if optional else None, help="registered model name (see `gradpath models`)")
    p.add_argument("--strategy", help="gradient-path strategy override where the model supports it (e.g. prn, csp, elan)")
    p.add_argument("--fusion", help="CSP fusion variant: fusion, first, last, none")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override any config field, e.g. --set num_classes=10 (repeatable)")


def model_from_args(args):
    from gradpath.models.registry import create_model

    overrides = parse_overrides(args.overrides)
    for key in ("strategy", "fusion"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    return create_model(args.model, **overrides)


def add_parser(sub) -> None:
    p = sub.add_parser("profile", help="count params/FLOPs, activation memory and latency of a model",
                       description="Profile a registered model. FLOPs = 2 x MACs of conv/linear on the "
                       "BN-folded model; params = the BN-folded (deploy) model; params_weights = conv/linear "
                       "weights only (darknet's count).")
    add_model_args(p)
    p.add_argument("--imgsz", type=int, help="square input size (default: the size the paper reports it at)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--iters", type=int, default=5, help="timed latency iterations; 0 skips latency (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed warm-up iterations (default 2)")
    p.add_argument("--device", default=None, help="device for latency, e.g. cpu or cuda:0 (default: cpu)")
    p.add_argument("--json", action="store_true", help="print the exact numbers as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from gradpath.profiling import profile

    model = model_from_args(args)  # latency copies it to --device itself
    res = profile(model, args.imgsz, batch=args.batch, iters=args.iters, warmup=args.warmup, device=args.device)
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
