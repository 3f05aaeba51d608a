"""``gradpath reproduce SUBCOMMAND``: check the paper's claims. ``flops``: every FLOPs/params row of Tables 2–8,
paper vs ours vs delta; exit 1 if a row that must match is off by more than 0.5%."""
from __future__ import annotations

import json

from gradpath.commands import COMMANDS
from gradpath.commands._reproduce_tables import add_table_parsers
from gradpath.errors import GradpathError
from gradpath.experiments.zoo import ROWS, TOLERANCE, evaluate_rows
from gradpath.formatting import table


def add_parser(sub) -> None:
    p = sub.add_parser("reproduce", help=COMMANDS["reproduce"][1],
                       description="Reproduce the paper's tables.")
    rsub = p.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    f = rsub.add_parser("flops", help="FLOPs and params of every row of Tables 2-8 vs the paper",
                        description="Paper vs ours for every FLOPs/params row of Tables 2-8 (fused model, "
                        "2 x MACs; Table 2: darknet weights-only params at 256). Exit 1 if a must-match row "
                        "is off by more than 0.5%.")
    f.add_argument("--table", action="append", help="only these tables (repeatable), e.g. --table 6")
    f.add_argument("--json", action="store_true", help="print the rows as JSON")
    f.set_defaults(func=run_flops)
    add_table_parsers(rsub)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def _pct(d: float | None) -> str:
    return "-" if d is None else f"{100 * d:+.2f}%"


def _num(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def run_flops(args) -> int:
    known = sorted({r.table for r in ROWS})
    bad = [t for t in args.table or [] if t not in known]
    if bad:
        raise GradpathError(f"--table {bad[0]}: no FLOPs/params rows; tables with rows: {', '.join(known)}")
    rows = evaluate_rows(set(args.table) if args.table else None)
    failed = [r for r in rows if r["status"] == "OFF"]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 1 if failed else 0
    body = [[r["table"], r["label"], r["model"], _num(r["gflops"], 2), _num(r["ours_gflops"], 2),
             _pct(r["delta_gflops"]), _num(r["params"], 2), _num(r["ours_params_m"], 2), _pct(r["delta_params"]),
             r["status"]] for r in rows]
    print(table(["table", "row", "model", "paper G", "ours G", "delta", "paper M", "ours M", "delta", "status"],
                body, "lllrrrrrrl"))
    notes: dict[str, list[str]] = {}
    for r in rows:
        if r["note"]:
            notes.setdefault(r["note"], []).append(r["model"])
    for note, models in notes.items():
        print(f"note ({', '.join(sorted(set(models)))}): {note}")
    limit = f"{100 * TOLERANCE:g}%"
    print(f"{len(rows) - len(failed)}/{len(rows)} rows ok or documented; "
          + (f"{len(failed)} must-match row(s) off by more than {limit}: "
             + ", ".join(f"table {r['table']} {r['model']}" for r in failed)
             if failed else f"all must-match rows within {limit}"))
    return 1 if failed else 0
