"""``gradpath analyze MODEL``: gradient paths per unit and per network (paper §2; definitions in
docs/gradient-paths.md).

User input is checked here, before any work: the user's model file (``--model FILE.py:Class``: missing file,
syntax error, missing class, a class that needs constructor arguments), ``--imgsz``, ``--max-rows`` and the
``--plot`` path. Each mistake is a one-line ``GradpathError`` (exit code 2).
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from gradpath.analysis import analyze
from gradpath.analysis.plots import check_plot_path, plot_report
from gradpath.analysis.scaling import FAMILIES, TABLE1, scaling
from gradpath.checks import check_imgsz, check_positive
from gradpath.commands._model_args import add_model_args, model_from_args
from gradpath.errors import GradpathError, suggest
from gradpath.formatting import table
from gradpath.models.registry import create_model


# Gradient paths depend on the graph and the shapes, not on the input size nor on the weights' values: a
# registered model is analysed at its own default size, at most this, unless --imgsz says otherwise.
REGISTERED_IMGSZ_CAP = 64


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
    p.add_argument("--imgsz", type=int, help="square input size (default: the model's default size, at most "
                   f"{REGISTERED_IMGSZ_CAP} for a registered model: paths do not depend on the size)")
    p.add_argument("--backend", default="auto", choices=["auto", "fx", "autograd"])
    p.add_argument("--norm", default="merge", choices=["merge", "count", "ignore"],
                   help="merge: Conv+BN(+act) is one unit (default); count: a norm is a unit of its own; "
                   "ignore: norms are pass-through and their parameters are not counted")
    p.add_argument("--no-groups", action="store_true", help="layer granularity (no channel groups)")
    p.add_argument("--include-frozen", action="store_true", help="list frozen units too")
    p.add_argument("--json", action="store_true", help="print the report as JSON (stable schema)")
    p.add_argument("--plot", metavar="FILE.png", help="path-length histogram + Fig.-7-style timestamp raster")
    p.add_argument("--compare", metavar="OTHER_MODEL",
                   help="a second registered model, side by side (delta = other - this)")
    p.add_argument("--max-rows", type=int, default=None, help="truncate the per-unit table to N rows")
    p.add_argument("--scaling", choices=list(FAMILIES),
                   help="Table 1: real nn.Module nets of growing depth, analysed; params, LSGP and aggregated "
                   "features with their fitted growth class")
    p.add_argument("--depths", default="4,8,16,32,64,128", help="depths N for --scaling (comma list)")
    p.set_defaults(func=run)


def load_model_file(spec: str) -> nn.Module:
    """``path/to/file.py:ClassName`` → an instance built with no arguments; user mistakes are one line."""
    if ":" not in spec:
        raise GradpathError(f"--model {spec!r} must look like path/to/file.py:ClassName")
    path, cls_name = spec.rsplit(":", 1)
    f = Path(path)
    if not f.is_file():
        raise GradpathError(f"--model: no such file {path}")
    modspec = importlib.util.spec_from_file_location(f"gradpath_user_{f.stem}", f)
    if modspec is None or modspec.loader is None:
        raise GradpathError(f"--model: {path} is not a Python file (give a .py file)")
    mod = importlib.util.module_from_spec(modspec)
    sys.modules[modspec.name] = mod
    try:
        modspec.loader.exec_module(mod)
    except SyntaxError as e:
        raise GradpathError(f"--model: {path} line {e.lineno}: syntax error: {e.msg}") from None
    except ImportError as e:
        raise GradpathError(f"--model: {path} cannot be imported: {e}") from None
    cls = getattr(mod, cls_name, None)
    if cls is None:
        names = [n for n in dir(mod) if not n.startswith("_")]
        raise GradpathError(f"--model: {path} has no {cls_name!r}.{suggest(cls_name, names)}")
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise GradpathError(f"--model: {path}:{cls_name} is not an nn.Module class")
    try:
        inspect.signature(cls).bind()
    except TypeError:
        required = [p.name for p in inspect.signature(cls).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                                           p.KEYWORD_ONLY)]
        raise GradpathError(f"--model: {path}:{cls_name}() needs arguments ({', '.join(required)}); analyze "
                            "builds it with none: give the arguments defaults or add a subclass that sets "
                            "them") from None
    return cls()


def _depths(text: str) -> list[int]:
    try:
        ns = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise GradpathError(f"--depths must be comma-separated integers, got {text!r}") from None
    if len(ns) < 3 or min(ns) < 2:
        raise GradpathError("--depths needs at least 3 depths, each >= 2")
    return ns


def _scaling(args) -> int:
    ns = _depths(args.depths)
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


def build_registered(build, *a, **kw) -> nn.Module:
    """``build(*a, **kw)`` on the meta device, then given uninitialised CPU storage (``to_empty``): no weight
    initialisation, and the report is the same as for an initialised model (``tests/analysis/
    test_cli_analyze.py`` checks it). yolov5x-seg: 0.5 s instead of 1.2 s. Staying on the meta device would
    cost more: its first elementwise op imports torch's compiler stack (so does ``to_empty``, hence
    ``_empty_on_cpu``). Only registered models: a user's file
    may compute with real values while it builds its model."""
    with torch.device("meta"):
        model = build(*a, **kw)
    return _empty_on_cpu(model)


def _empty_on_cpu(model: nn.Module) -> nn.Module:
    """``model.to_empty(device="cpu")`` without its cost: ``to_empty`` calls ``empty_like`` on meta tensors, which
    runs torch's Python reference kernel and imports its symbolic-shape machinery (about a second of start-up).
    Plain ``torch.empty`` of each shape gives the same storage; a parameter shared by two modules stays shared."""
    new: dict[int, torch.Tensor] = {}

    def fresh(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in new:
            e = torch.empty(t.shape, dtype=t.dtype)
            new[id(t)] = nn.Parameter(e, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else e
        return new[id(t)]

    for module in model.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            setattr(module, name, fresh(p))
        for name, b in list(module.named_buffers(recurse=False)):
            setattr(module, name, fresh(b))  # an existing buffer's name: it stays a (non-)persistent buffer
    return model


def _imgsz(args, model: nn.Module) -> int | None:
    if args.imgsz is not None or args.model_file:
        return args.imgsz
    return min(getattr(model, "default_imgsz", REGISTERED_IMGSZ_CAP), REGISTERED_IMGSZ_CAP)


def _check_args(args) -> None:
    if args.imgsz is not None:
        if args.model_file:  # the user's own model: any positive size may be right for it
            check_positive(args.imgsz, "--imgsz")
        else:  # registered models (and --compare): the size every registered model accepts
            check_imgsz(args.imgsz)
    if args.max_rows is not None:
        check_positive(args.max_rows, "--max-rows")
    if args.plot:
        check_plot_path(args.plot, "--plot")


def run(args) -> int:
    if args.scaling:
        return _scaling(args)
    if not args.model and not args.model_file:
        raise GradpathError("give a registered MODEL, --model FILE.py:ClassName, or --scaling FAMILY")
    _check_args(args)
    model = load_model_file(args.model_file) if args.model_file else build_registered(model_from_args, args)
    kw = dict(backend=args.backend, norm=args.norm, channel_groups=not args.no_groups,
              include_frozen=args.include_frozen)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fallbacks are recorded in report.warnings
        rep = analyze(model, imgsz=_imgsz(args, model), **kw)
        other = None
        if args.compare:  # the other model is built with its own defaults
            other_model = build_registered(create_model, args.compare)
            other = analyze(other_model, imgsz=_imgsz(args, other_model), **kw)
    if args.plot:
        plot_report(rep, args.plot, [other] if other else [])
    if args.json:
        d = rep.to_dict()
        print(json.dumps({"a": d, "b": other.to_dict()} if other else d, indent=2))
        return 0
    if other:
        print(compare_table(rep, other))
    else:
        print(rep.table(args.max_rows))
        print()
        print(rep.summary())
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0


_NETWORK_KEYS = ("units", "layers", "params", "lgp", "lsgp", "mean_sgp", "share_sgp_le_2",
                 "mean_aggregated_features", "max_aggregated_features")
_INPUT_KEYS = ("paths", "sgp", "lgp", "mean", "mode")


def _delta(this, other) -> str:
    """``other − this``: exact for integers (path counts can exceed 2**53, so JSON keeps them as strings)."""
    this, other = (int(v) if isinstance(v, str) and v.isdigit() else v for v in (this, other))
    if isinstance(this, bool) or isinstance(other, bool):
        return ""
    if isinstance(this, int) and isinstance(other, int):
        return f"{other - this:+,}"
    if isinstance(this, (int, float)) and isinstance(other, (int, float)):
        return f"{other - this:+.3f}"
    return ""


def _value(v) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def compare_table(a, b) -> str:
    """Network figures of two reports side by side; the last column is ``other − this`` (b minus a)."""
    na, nb = a.network(), b.network()
    ia, ib = na["input"], nb["input"]
    pairs = [(key, na[key], nb[key]) for key in _NETWORK_KEYS]
    pairs += [(f"input {key}", ia[key], ib[key]) for key in _INPUT_KEYS]
    rows = [[key, _value(this), _value(other), _delta(this, other)] for key, this, other in pairs]
    return table(["quantity", f"this: {a.model_name}", f"other: {b.model_name}", "delta (other − this)"], rows,
                 "lrrr")
