"""Which factor of a ``shapes-cls`` class a classifier gets wrong: colour family, fill pattern or shape.

Why: a ``shapes-cls`` class is colour × pattern × shape, and the seeds of one recipe can split into two groups a
dozen points apart. Counting, over the confusion matrix, the errors whose predicted class has another colour,
another pattern or another shape than the true one tells *what* the weak seeds did not learn (an error can count
for more than one factor). Input: the JSON that ``gradpath val --data shapes-cls --json`` prints, one file a run.

    gradpath val --weights runs/.../best.pt --data shapes-cls --json > seed0.json
    python scripts/shapes_cls_factors.py seed0.json seed1.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gradpath.data.shapes_cls import class_names

FACTORS = ("colour", "pattern", "shape")


def factor_errors(confusion: list[list[int]], names: list[str]) -> dict[str, int]:
    """Errors (true row, predicted column, off the diagonal) whose classes differ in each factor; class names are
    ``colour-pattern-shape``."""
    parts = [n.split("-") for n in names]
    out = dict.fromkeys(FACTORS, 0)
    out["errors"] = 0
    for i, row in enumerate(confusion):
        for j, count in enumerate(row):
            if i != j and count:
                out["errors"] += count
                for k, factor in enumerate(FACTORS):
                    if parts[i][k] != parts[j][k]:
                        out[factor] += count
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", help="`gradpath val --data shapes-cls --json` output files")
    args = ap.parse_args(argv)
    names = class_names()
    print(f"{'file':<40}{'top-1 %':>8}{'errors':>8}" + "".join(f"{f + ' err':>13}" for f in FACTORS))
    for f in args.results:
        try:
            r = json.loads(Path(f).read_text())
            confusion = r["confusion"]
        except (OSError, ValueError, KeyError) as e:
            print(f"error: {f}: not the JSON of `gradpath val --json` ({e})", file=sys.stderr)
            return 1
        if len(confusion) != len(names):
            print(f"error: {f}: {len(confusion)} classes, shapes-cls has {len(names)}", file=sys.stderr)
            return 1
        e = factor_errors(confusion, names)
        print(f"{f:<40}{100 * r['top1']:>8.1f}{e['errors']:>8}" + "".join(f"{e[k]:>13}" for k in FACTORS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
