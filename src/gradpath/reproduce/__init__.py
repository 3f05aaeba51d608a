"""``gradpath reproduce``: the paper's tables, at small scale here or at full scale on a cluster.

- ``reproduce_small(table)``: Table 1 is measured by the analyzer on real networks of growing depth; Tables 2-8 are
  trained from scratch, scaled down, on the embedded sets, one recipe per table, several seeds, and each claim of
  the paper is judged with a stated test (``gradpath.reproduce.stats``). Outputs in ``runs/reproduce/<table>/``.
- ``full_commands(table)``: the paper's full-scale training of every row as ``torchrun`` commands, with a data
  yaml per dataset (``gradpath.reproduce.full``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from gradpath.analysis.scaling import FAMILIES, TABLE1, scaling
from gradpath.experiments.tables import TABLES, TableSpec
from gradpath.experiments.zoo import measure
from gradpath.reproduce.report import machine, write_outputs
from gradpath.reproduce.small import run_small

__all__ = ["reproduce_small", "reproduce_table1", "TABLES"]


def reproduce_table1(out: Path, depths: tuple[int, ...] = (4, 8, 16, 32, 64)) -> dict[str, Any]:
    """Table 1 by measurement: each family built as a real network at growing depth N and analysed."""
    rows = []
    for family in FAMILIES:
        res = scaling(family, depths)
        paper = dict(zip(("params", "lsgp", "max_af"), TABLE1[family]))
        rows.append({"family": family, "depths": list(depths), "measured": res["rows"], "growth": res["growth"],
                     "paper": paper, "agrees": {k: _same_growth(res["growth"][k], paper[k]) for k in paper}})
    res = {"table": "table1", "title": TABLES["table1"].title, "scale": "analysis", "rows": rows,
           "machine": machine()}
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# table1: {res['title']}", "",
             "Each family is built as a real `nn.Module` of depth N and analysed by `gradpath.analyze`; the growth "
             "class is fitted to the measured values over N = " + ", ".join(map(str, depths)) + ".", "",
             "| family | params: paper / measured | shortest gradient path: paper / measured | "
             "aggregated features: paper / measured |", "|---|---|---|---|"]
    for r in rows:
        cells = [f"O({r['paper'][k]}) / O({r['growth'][k]}) {'✓' if r['agrees'][k] else '✗'}"
                 for k in ("params", "lsgp", "max_af")]
        lines.append(f"| {r['family']} | " + " | ".join(cells) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(res, indent=1))
    return res


def _same_growth(measured: str, paper: str) -> bool:
    return measured.replace(" ", "") == paper.replace(" ", "")


def reproduce_small(name: str, *, seeds: int = 3, budget: str = "default", out: Path | None = None,
                    runs: Path | None = None, device: str | None = None, log: Callable[[str], None] = print,
                    progress: bool = True, jobs: int = 1, finished_only: bool = False,
                    rows: list[str] | None = None) -> dict[str, Any]:
    """Reproduce table ``name`` at small scale; writes results.json/.md and figures to ``out``.

    The training runs go to ``runs`` (default: ``runs/`` beside ``out``), shared by every table that has the same
    (model, seed) under the same recipe. ``jobs`` > 1 trains that many runs side by side (separate processes).
    ``finished_only`` trains nothing and reports the runs finished so far; ``rows`` trains only those rows and
    reports the others with the runs they have finished (``run_small``).
    """
    spec: TableSpec = TABLES[name]
    out = Path(out or Path("runs") / "reproduce" / name)
    runs = Path(runs or out.parent / "runs")
    if spec.analysis_only:
        return reproduce_table1(out)
    counts = {}
    for row in spec.rows:
        if row.model not in counts:
            m = measure(row.model)
            counts[row.model] = {"gflops": m["gflops"], "params_m": m["params_m"], "imgsz": m["imgsz"]}
    res = run_small(spec, seeds=seeds, budget=budget, runs=runs, device=device, log=log, progress=progress,
                    counts=counts, jobs=jobs, finished_only=finished_only, rows=rows)
    write_outputs(res, out)
    return res
