"""The analyzer's figures for each row of a table, so the paper's reasoning stands next to its result.

Each row's full-size network (the paper's architecture, not the scaled-down one trained here) is analysed once:
its longest gradient path (LGP), the longest of the shortest gradient paths (LSGP) and the mean shortest path.
Against the row a claim compares it with (its *reference*: the earlier row of the first claim naming it, e.g.
CSPDarknet-53 against Darknet-53, a stop-gradient variant against its baseline) it also reports what changes in the
gradient timestamps — the quantity the stop-gradient (Table 3) and PRN (Table 5) arguments are about: how many
layers see a different set of timestamps. Every row also gets the mean number of distinct timestamps per layer.
A row no claim compares with an earlier row (a table's first row, Table 2's baselines) has no reference: comparing
ResNet-50 with Darknet-53 layer by layer says nothing. Definitions: docs/gradient-paths.md.
"""
from __future__ import annotations

from typing import Any

from gradpath.analysis import analyze
from gradpath.experiments.tables import TableSpec
from gradpath.models.registry import create_model

__all__ = ["row_figures", "reference_rows", "ANALYSIS_IMGSZ"]

#: input size of the analysis: gradient paths depend on the topology, not the input size (any size the model
#: accepts gives the same figures), and a small one keeps shape propagation fast
ANALYSIS_IMGSZ = 256


def _units(report: dict) -> dict[str, set[int]]:
    return {u["name"]: set(u.get("timestamps") or ()) for u in report["units"]}


def reference_rows(spec: TableSpec) -> dict[str, str]:
    """``{row key: reference row key}``: for each row, the earlier row of the first claim that names both.

    Rows no claim compares with an earlier row are left out.
    """
    order = {r.key: i for i, r in enumerate(spec.rows)}
    ref: dict[str, str] = {}
    for c in spec.claims:
        for row, other in ((c.a, c.b), (c.b, c.a)):
            if row not in ref and order.get(other, len(order)) < order.get(row, -1):
                ref[row] = other
    return ref


def row_figures(spec: TableSpec) -> dict[str, dict[str, Any]]:
    """``{row key: {lgp, lsgp, mean_sgp, units, mean_timestamps[, timestamps_vs]}}`` for every row."""
    out: dict[str, dict[str, Any]] = {}
    units_of: dict[str, dict[str, set[int]]] = {}
    cache: dict[str, dict] = {}
    refs = reference_rows(spec)
    for row in spec.rows:
        if row.model not in cache:
            cache[row.model] = analyze(create_model(row.model), imgsz=ANALYSIS_IMGSZ).to_dict()
        rep = cache[row.model]
        units = units_of[row.key] = _units(rep)
        net = rep["network"]
        fig = {"lgp": net["lgp"], "lsgp": net["lsgp"], "mean_sgp": net.get("mean_sgp"), "units": net["units"],
               "mean_timestamps": round(sum(len(t) for t in units.values()) / max(len(units), 1), 3)}
        if row.key in refs:
            other = units_of[refs[row.key]]
            common = [n for n in units if n in other]
            fig["timestamps_vs"] = {
                "row": refs[row.key],
                "units_compared": len(common),
                "units_changed": sum(units[n] != other[n] for n in common),
            }
        out[row.key] = fig
    return out
