"""The analyzer's figures for each row of a table, so the paper's reasoning stands next to its result.

Each row's full-size network (the paper's architecture, not the scaled-down one trained here) is analysed once:
its longest gradient path (LGP), the longest of the shortest gradient paths (LSGP) and the mean shortest path.
Against the table's first row it also reports what changes in the gradient timestamps — the quantity the
stop-gradient (Table 3) and PRN (Table 5) arguments are about: how many layers see a different set of
timestamps, and the mean number of distinct timestamps per layer. Definitions: docs/gradient-paths.md.
"""
from __future__ import annotations

from typing import Any

from gradpath.analysis import analyze
from gradpath.experiments.tables import TableSpec
from gradpath.models.registry import create_model

__all__ = ["row_figures", "ANALYSIS_IMGSZ"]

#: input size of the analysis: gradient paths depend on the topology, not the input size (any size the model
#: accepts gives the same figures), and a small one keeps shape propagation fast
ANALYSIS_IMGSZ = 256


def _units(report: dict) -> dict[str, set[int]]:
    return {u["name"]: set(u.get("timestamps") or ()) for u in report["units"]}


def row_figures(spec: TableSpec) -> dict[str, dict[str, Any]]:
    """``{row key: {lgp, lsgp, mean_sgp, units, mean_timestamps, timestamps_vs_first}}`` for every row."""
    out: dict[str, dict[str, Any]] = {}
    first: dict[str, set[int]] | None = None
    cache: dict[str, dict] = {}
    for row in spec.rows:
        if row.model not in cache:
            cache[row.model] = analyze(create_model(row.model), imgsz=ANALYSIS_IMGSZ).to_dict()
        rep = cache[row.model]
        units = _units(rep)
        net = rep["network"]
        fig = {"lgp": net["lgp"], "lsgp": net["lsgp"], "mean_sgp": net.get("mean_sgp"), "units": net["units"],
               "mean_timestamps": round(sum(len(t) for t in units.values()) / max(len(units), 1), 3)}
        if first is None:
            first = units
        else:
            common = [n for n in units if n in first]
            fig["timestamps_vs_first"] = {
                "units_compared": len(common),
                "units_changed": sum(units[n] != first[n] for n in common),
            }
        out[row.key] = fig
    return out
