"""``gradpath models [PATTERN]``: list registered models with the paper's reference numbers."""
from __future__ import annotations

import json

from gradpath.commands._format import fmt_num, table


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list registered models and their paper numbers",
                       description="List registered models (shell pattern, e.g. 'yolor-*') with the paper's "
                       "FLOPs/params at the size they hold at.")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter on model names (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args) -> int:
    from gradpath.models.registry import model_entries

    entries = model_entries(args.pattern)
    if args.json:
        out = []
        for e in entries:
            ref = e.paper
            out.append({
                "name": e.name, "task": e.task, "default_imgsz": e.default_imgsz, "description": e.description,
                "paper": None if ref is None else {
                    "table": ref.table, "imgsz": ref.imgsz, "gflops": ref.gflops, "params_m": ref.params,
                    "params_rule": ref.params_rule, "metric": ref.metric, "must_match": ref.must_match,
                },
            })
        print(json.dumps(out, indent=2))
        return 0
    if not entries:
        print(f"no model matches {args.pattern!r}")
        return 1
    rows = []
    for e in entries:
        ref = e.paper
        rows.append([
            e.name, e.task, e.default_imgsz,
            ref.table if ref else "-",
            fmt_num(ref.gflops, 1) if ref else "-",
            fmt_num(ref.params, 2) if ref else "-",
            ("match" if ref.must_match else "reconstruction") if ref else "-",
            e.description,
        ])
    print(table(["model", "task", "imgsz", "table", "paper GFLOPs", "paper params (M)", "target", "description"],
                rows, "llrlrrll"))
    return 0
