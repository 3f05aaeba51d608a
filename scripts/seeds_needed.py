"""How many seeds per row each "better" claim of the paper needs, at a given seed-to-seed std.

Why: "within noise" is only informative when the test could have found the effect. For every claim that one row
beats another (Tables 2-8, `gradpath.experiments.tables`), this takes the effect the paper reports (its two
rows' printed AP or top-1) and prints the seeds per row that Welch's t-test (two-sided, alpha 0.05) needs to find
it with 80% power, at each std given — e.g. the stds `scripts/seed_noise.py` measured for the small recipe.
"not worse" claims are left out: noise cannot refute them, so their power is not the question.

    python scripts/seeds_needed.py --std 5.0 4.0 2.0 1.0        # stds in AP points (or top-1 points)

This assumes the effect at small scale equals the paper's at full scale, which nothing guarantees: it is a
yardstick for the budget, not a prediction.
"""
from __future__ import annotations

import argparse
import sys

from gradpath.experiments.tables import TABLES
from gradpath.reproduce.stats import seeds_needed

PAPER_KEY = {"box_map": "box_ap", "top1": "top1"}


def claim_effects() -> list[tuple[str, str, float]]:
    """(table, claim text, the paper's difference in points) for every "better" claim with paper numbers."""
    out = []
    for spec in TABLES.values():
        key = PAPER_KEY.get(spec.metric)
        for c in spec.claims:
            a, b = spec.row(c.a).paper, spec.row(c.b).paper
            if c.kind == "better" and key in a and key in b:
                out.append((spec.name, c.text, round(a[key] - b[key], 2)))
    return out


def render(stds: list[float], power: float) -> str:
    head = "| table | claim | paper's effect (points) | " + " | ".join(f"std {s:g}" for s in stds) + " |"
    lines = [head, "|" + "---|" * (3 + len(stds))]
    for table, text, diff in claim_effects():
        cells = [str(seeds_needed(diff, s, target=power)) for s in stds]
        lines.append(f"| {table} | {text} | {diff:+.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--std", type=float, nargs="+", default=[5.0, 2.0, 1.0],
                   help="seed-to-seed std of the table's metric, in points (AP or top-1); several give several "
                        "columns (default 5 2 1)")
    p.add_argument("--power", type=float, default=0.8, help="chance of finding the effect (default 0.8)")
    args = p.parse_args(argv)
    if any(s <= 0 for s in args.std) or not 0 < args.power < 1:
        print("seeds_needed.py: --std values must be > 0 and --power in (0, 1)", file=sys.stderr)
        return 2
    print(f"Seeds per row for Welch's t-test (two-sided, alpha 0.05) to find the paper's effect with power "
          f"{args.power:g}:\n")
    print(render(args.std, args.power))
    return 0


if __name__ == "__main__":
    sys.exit(main())
