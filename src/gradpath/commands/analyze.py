"""``gradpath analyze MODEL``: gradient paths per unit and per network (paper §2; GRADIENT_PATHS.md)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from gradpath.commands.profile import add_model_args, model_from_args
from gradpath.errors import GradpathError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "analyze", help="gradient paths: SGP/LGP, timestamps, path counts, sources per unit; LGP/LSGP per net",
        description="Gradient path analysis (Wang, Liao & Yeh 2022 §2): for every unit (Conv+BN+act) and "
        "channel group, the shortest/longest gradient path, timestamps, number of paths of each length, "
        "gradient sources and aggregated features; per network the longest gradient path and the longest "
        "shortest gradient path. Every model output feeds the loss.")
    add_model_args(p, optional=True)  # MODEL may be left out with --model FILE or --scaling
    p.add_argument("--model", dest="model_file", metavar="FILE.py:ClassName",
                   help="analyse a class from your own file (constructed with no arguments) instead")
    p.add_argument("--imgsz", type=int, help="square input size (default: the model's default)")
    p.add_argument("--backend", default="auto", choices=["auto", "fx", "autograd"])
    p.add_argument("--norm", default="merge", choices=["merge", "count", "ignore"])
    p.add_argument("--no-groups", action="store_true", help="layer granularity (no channel groups)")
    p.add_argument("--include-frozen", action="store_true", help="list frozen units too")
    p.add_argument("--json", action="store_true", help="print the report as JSON (stable schema)")
    p.add_argument("--plot", metavar="FILE.png", help="path-length histogram + Fig.-7-style timestamp raster")
    p.add_argument("--compare", metavar="OTHER_MODEL", help="a second registered model, side by side")
    p.add_argument("--max-rows", type=int, default=None, help="truncate the per-unit table")
    p.add_argument("--scaling", choices=["plain", "resnet", "densenet", "sparsenet", "sparse-resnet"],
                   help="Table 1: params, LSGP and aggregated features over growing depth")
    p.add_argument("--depths", default="4,8,16,32,64,128", help="depths N for --scaling (comma list)")
    p.set_defaults(func=run)


def load_model_file(spec: str):
    if ":" not in spec:
        raise GradpathError(f"--model {spec!r} must look like path/to/file.py:ClassName")
    path, cls = spec.rsplit(":", 1)
    f = Path(path)
    if not f.is_file():
        raise GradpathError(f"--model: no such file {path}")
    modspec = importlib.util.spec_from_file_location(f"gradpath_user_{f.stem}", f)
    mod = importlib.util.module_from_spec(modspec)
    sys.modules[modspec.name] = mod
    modspec.loader.exec_module(mod)
    if not hasattr(mod, cls):
        from gradpath.errors import suggest

        names = [n for n in dir(mod) if not n.startswith("_")]
        raise GradpathError(f"--model: {path} has no {cls!r}.{suggest(cls, names)}")
    return getattr(mod, cls)()


def _scaling(args) -> int:
    from gradpath.analysis.scaling import TABLE1, scaling
    from gradpath.commands._format import table

    try:
        ns = [int(s) for s in args.depths.split(",") if s.strip()]
    except ValueError:
        raise GradpathError(f"--depths must be comma-separated integers, got {args.depths!r}") from None
    if len(ns) < 3 or min(ns) < 2:
        raise GradpathError("--depths needs at least 3 depths, each >= 2")
    res = scaling(args.scaling, ns)
    if args.json:
        print(json.dumps({"family": args.scaling, **res, "paper": dict(zip(("params", "lsgp", "af"),
                                                                          TABLE1[args.scaling]))}, indent=2))
        return 0
    rows = [[r["N"], f"{r['params']:,}", r["lsgp"], r["lgp"], r["max_af"], r["mean_af"]] for r in res["rows"]]
    print(f"{args.scaling}: N = " + ("residual blocks (2 convs each)" if args.scaling == "resnet" else "conv layers"))
    print(table(["N", "params", "LSGP", "LGP", "AF(last)", "AF(mean)"], rows))
    g, p = res["growth"], TABLE1[args.scaling]
    print(f"fitted growth: params O({g['params']}), LSGP O({g['lsgp']}), aggregated features O({g['max_af']})")
    print(f"paper Table 1: params O({p[0]}), LSGP O({p[1]}), aggregated features O({p[2]})")
    return 0


def _build(args):
    if args.model_file:
        return load_model_file(args.model_file)
    return model_from_args(args)


def run(args) -> int:
    from gradpath.analysis import analyze

    if args.scaling:
        return _scaling(args)
    if not args.model and not args.model_file:
        raise GradpathError("give a registered MODEL, --model FILE.py:ClassName, or --scaling FAMILY")
    kw = dict(imgsz=args.imgsz, backend=args.backend, norm=args.norm, channel_groups=not args.no_groups,
              include_frozen=args.include_frozen)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fallbacks are recorded in report.warnings
        rep = analyze(_build(args), **kw)
        other = None
        if args.compare:
            from gradpath.models.registry import create_model

            other = analyze(create_model(args.compare), **kw)  # the other model with its own defaults
    if args.plot:
        from gradpath.analysis.plots import plot_report

        plot_report(rep, args.plot, [other] if other else [])
    if args.json:
        d = rep.to_dict()
        print(json.dumps({"a": d, "b": other.to_dict()} if other else d, indent=2))
        return 0
    if other:
        _compare(rep, other)
    else:
        print(rep.table(args.max_rows))
        print()
        print(rep.summary())
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0


def _compare(a, b) -> None:
    from gradpath.commands._format import table

    na, nb = a.network(), b.network()
    rows = []
    for key in ("units", "layers", "params", "lgp", "lsgp", "mean_sgp", "share_sgp_le_2",
                "mean_aggregated_features", "max_aggregated_features"):
        va, vb = na[key], nb[key]
        delta = "" if va is None or vb is None else (f"{vb - va:+,}" if isinstance(va, int) and isinstance(
            vb, int) else f"{vb - va:+.3f}")
        rows.append([key, va, vb, delta])
    ia, ib = na["input"], nb["input"]
    for key in ("paths", "sgp", "lgp", "mean", "mode"):
        va, vb = ia[key], ib[key]
        ok = isinstance(va, (int, float)) and isinstance(vb, (int, float))
        rows.append([f"input {key}", va, vb, (f"{vb - va:+,}" if isinstance(va, int) and isinstance(vb, int) else f"{vb - va:+.3f}") if ok else ""])
    print(table(["quantity", a.model_name, b.model_name, "delta"], rows, "lrrr"))
