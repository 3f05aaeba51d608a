"""``gradpath models [PATTERN]``: list registered models with the paper's reference numbers."""
from __future__ import annotations

import json

from gradpath.commands import COMMANDS
from gradpath.errors import GradpathError, suggest
from gradpath.formatting import fmt_num, table
from gradpath.models.registry import list_models, model_entries


def add_parser(sub) -> None:
    p = sub.add_parser("models", help=COMMANDS["models"][1],
                       description="List registered models (shell pattern, e.g. 'yolor-*') with the paper's "
                       "FLOPs/params at the size they hold at. A pattern that matches nothing is an error "
                       "(exit status 2).")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter on model names (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args) -> int:
    entries = model_entries(args.pattern)
    if not entries:
        # A pattern that matches nothing is a mistake (like an unknown name), also with --json.
        names = list_models()
        raise GradpathError(f"no model matches {args.pattern!r}.{suggest(args.pattern, names)} `gradpath models` "
                            f"lists all {len(names)} (patterns are shell-style, e.g. 'yolor-*')")
    if args.json:
        out = []
        for e in entries:
            ref = e.paper
            out.append({
                "name": e.name, "task": e.task, "default_imgsz": e.default_imgsz, "description": e.description,
                "paper": None if ref is None else {
                    "table": ref.table, "imgsz": ref.imgsz, "gflops": ref.gflops, "params_m": ref.params,
                    "params_rule": ref.params_rule, "metric": ref.metric, "status": ref.status,
                    "reconstruction": ref.reconstruction, "check_gflops": ref.check_gflops,
                    "check_params": ref.check_params, "note": ref.note,
                },
            })
        print(json.dumps(out, indent=2))
        return 0
    rows = []
    for e in entries:
        ref = e.paper
        rows.append([
            e.name, e.task, e.default_imgsz,
            ref.table if ref else "-",
            fmt_num(ref.gflops, 1) if ref else "-",
            fmt_num(ref.params, 2) if ref else "-",
            ref.status if ref else "-",
            e.description,
        ])
    print(table(["model", "task", "imgsz", "table", "paper GFLOPs", "paper params (M)", "target", "description"],
                rows, "llrlrrll"))
    return 0
