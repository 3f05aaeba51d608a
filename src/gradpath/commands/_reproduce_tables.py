"""``gradpath reproduce TABLE``: one subcommand per paper table (table1 … table8) and ``all``."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from gradpath.errors import GradpathError
from gradpath.experiments.tables import TABLES
from gradpath.reproduce import reproduce_small
from gradpath.reproduce.full import full_commands, launch
from gradpath.reproduce.recipes import BUDGETS
from gradpath.reproduce.report import console_summary


def add_table_parsers(rsub) -> None:
    for name in [*TABLES, "all"]:
        title = TABLES[name].title if name in TABLES else "every table in turn"
        p = rsub.add_parser(name, help=f"{title}", description=(
            f"Reproduce {name}: {title}. --scale small trains width/depth-scaled versions of every row from "
            "scratch on the embedded sets (Table 2: shapes-cls; Tables 3-8: shapes) with one recipe for all rows "
            "and several seeds, and judges each claim of the paper with Welch's t-test; outputs go to "
            "runs/reproduce/<table>/ (results.md, results.json, bars.png, curves.png) and the training runs to "
            "runs/reproduce/runs/<budget>/<task>/<model>-seed<k>/, shared by the tables that have the same row. "
            "Finished runs there are reused and interrupted ones resumed; one trained with another recipe is "
            "refused. --scale full prints the paper's training of every row as torchrun commands (and runs them "
            "with --launch)."))
        p.add_argument("--scale", choices=("small", "full"), default="small", help="small (here) or full (the "
                       "paper's setting, on a cluster) (default small)")
        p.add_argument("--seeds", type=int, default=3, help="seeds per row at small scale (default 3)")
        p.add_argument("--budget", choices=BUDGETS, default="default", help="small scale: default (hours "
                       "per table on 2 cores: 30 epochs for detection, not yet at a plateau; 60 for classification; "
                       "see docs/reproduce.md) or quick "
                       "(minutes; for tests only, NOT meaningful)")
        p.add_argument("--device", help="cpu, cuda, cuda:N (default: CUDA if available, else cpu)")
        p.add_argument("--jobs", type=int, default=1, help="small scale: train this many runs side by side, each "
                       "in its own process with cores/jobs threads (default 1)")
        p.add_argument("--project", default="runs/reproduce", help="root of the output folders (default "
                       "runs/reproduce)")
        p.add_argument("--data-root", help="full scale: where COCO 2017 / ImageNet lives (written into the data yaml)")
        p.add_argument("--nproc", type=int, help="full scale: processes per node for torchrun (default 8)")
        p.add_argument("--launch", action="store_true", help="full scale: run the commands instead of printing them")
        p.add_argument("--finished-only", action="store_true", help="small scale: train nothing; write the "
                       "table from the runs that have finished so far (e.g. while it trains in another process), "
                       "each row with the seeds it has, marked PARTIAL")
        p.add_argument("--rows", metavar="KEY[,KEY...]", help="small scale: train only these rows (keys as in "
                       "results.json, e.g. darknet53,csp-darknet53), for more seeds on one claim; the other rows are "
                       "reported with the runs they have finished, and each row's n says how many seeds it has")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.set_defaults(func=run_table, table_name=name)


def run_table(args: argparse.Namespace) -> int:
    if args.seeds < 1:
        raise GradpathError(f"--seeds must be >= 1, got {args.seeds}")
    if args.jobs < 1:
        raise GradpathError(f"--jobs must be >= 1, got {args.jobs}")
    names = list(TABLES) if args.table_name == "all" else [args.table_name]
    rc = 0
    for name in names:
        out = Path(args.project) / name
        if args.scale == "full":
            if TABLES[name].analysis_only:
                print(f"{name}: measured by the analyzer, no training; `gradpath reproduce {name}` runs it here")
                continue
            cmds = full_commands(TABLES[name], out / "full", args.data_root, args.nproc)
            print(f"# {name}: {TABLES[name].title} — the paper's training of every row")
            for cmd in cmds:
                print(shlex.join(cmd))
            if args.launch:
                rc = launch(cmds, args.data_root) or rc
            continue
        res = reproduce_small(name, seeds=args.seeds, budget=args.budget, out=out, device=args.device,
                              progress=not args.quiet, jobs=args.jobs, finished_only=args.finished_only,
                              rows=[k.strip() for k in args.rows.split(",") if k.strip()] if args.rows else None)
        if TABLES[name].analysis_only:
            print((out / "results.md").read_text())
        else:
            print(console_summary(res))
            print(f"→ {out / 'results.md'}")
    return rc
