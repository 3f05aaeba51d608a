"""Print the README's zoo table (markdown) from the paper rows and our measured counts — never typed by hand.

Usage: .venv/bin/python scripts/gen_zoo_table.py [--registry]
Default: one line per row of Tables 2–8 (gradpath.experiments.zoo.ROWS). ``--registry`` adds the registered
models that are no table row (e.g. tiny-*), with our counts at their default size.
"""
from __future__ import annotations

import argparse
import sys

from gradpath.experiments.zoo import ROWS, evaluate_rows, measure
from gradpath.models import get_entry, list_models


def _n(v: float | None, d: int = 2) -> str:
    return "–" if v is None else f"{v:.{d}f}"


def _p(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:+.2f}%"


STATUS = {"ok": "✓ match", "OFF": "✗ OFF", "recon": "reconstruction", "known": "✓ FLOPs; params: paper discrepancy (see note)"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--registry", action="store_true", help="also list registered models outside the tables")
    args = ap.parse_args(argv)
    rows = evaluate_rows()
    print("| model | table | paper GFLOPs | ours | Δ | paper params (M) | ours | Δ | status |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        rule = " (weights)" if r["params_rule"] == "weights" else ""
        print(f"| `{r['model']}` ({r['label']}) | {r['table']} | {_n(r['gflops'])} | {_n(r['ours_gflops'])} | "
              f"{_p(r['delta_gflops'])} | {_n(r['params'])} | {_n(r['ours_params_m'])}{rule} | "
              f"{_p(r['delta_params'])} | {STATUS[r['status']]} |")
    if args.registry:
        in_rows = {r.model for r in ROWS}
        for name in list_models():
            if name in in_rows:
                continue
            m = measure(name)
            print(f"| `{name}` | – | – | {_n(m['gflops'], 3)} @{get_entry(name).default_imgsz} | – | – | "
                  f"{_n(m['params_m'], 3)} | – | not a paper row |")
    notes = {}
    for r in rows:
        if r["note"]:
            notes.setdefault(r["note"], set()).add(r["model"])
    print()
    print("GFLOPs at 640 (Table 2: 256), fused model, 2 × MACs; params fused (Table 2: conv/linear weights).")
    for note, models in notes.items():
        print(f"- {', '.join(f'`{m}`' for m in sorted(models))}: {note}")
    return 1 if any(r["status"] == "OFF" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
