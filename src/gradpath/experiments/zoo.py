"""Every FLOPs/params row of the paper's Tables 2–8, and our measurement of it.

A row names the paper's table and row label and the registered model it is (the rows of
:mod:`gradpath.experiments.tables`); the paper's figures come from that
model's :class:`~gradpath.models.registry.PaperRef` (typed once, there), and which of them must be reproduced
(within 0.5%) too: a labelled reconstruction is shown, never required, and a figure the paper misprints
(Table 8's 34.5M for YOLOR-ELAN is the ELAN-{1,1}s count, docs/reconstructions.md) is shown with its delta
but does not fail the check.

Counting follows :mod:`gradpath.profiling` (fused model, 2 × MACs; darknet weights-only params for Table 2,
docs/counting.md) on a model built directly on the ``meta`` device, so all rows take seconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gradpath.experiments.tables import TABLES
from gradpath.models.registry import get_entry
from gradpath.profiling import count_flops, count_params

TOLERANCE = 0.005


@dataclass(frozen=True)
class Row:
    table: str
    label: str  # the paper's row name
    model: str  # registered model name
    params_column: bool = False  # the table prints a params column (Tables 2 and 8)


#: the tables that print a params column (Tables 2 and 8); the others give FLOPs only
PARAMS_COLUMN = ("table2", "table8")

#: every row of every training table, in the paper's order: the tables' own rows (``experiments.tables``, one
#: list for both the counts and the training claims)
ROWS: tuple[Row, ...] = tuple(Row(spec.name.removeprefix("table"), r.label, r.model, spec.name in PARAMS_COLUMN)
                              for spec in TABLES.values() if not spec.analysis_only for r in spec.rows)


def measure(name: str, imgsz: int | None = None, **overrides: Any) -> dict[str, float]:
    """GFLOPs and params (M) of a registered model at its paper size, built on the meta device (no memory, no
    init cost). ``params`` follows the entry's rule: fused count, or conv/linear weights for darknet's."""
    entry = get_entry(name)
    ref = entry.paper
    size = imgsz or (ref.imgsz if ref else entry.default_imgsz)
    with torch.device("meta"):
        model = entry.build(**overrides)
    counts = count_params(model)
    rule = ref.params_rule if ref else "fused"
    params = counts["params_weights"] if rule == "weights" else counts["params"]
    return {"gflops": count_flops(model, size) / 1e9, "params_m": params / 1e6, "imgsz": size,
            "params_rule": rule}


def _delta(ours: float, paper: float | None) -> float | None:
    return None if paper is None else (ours - paper) / paper


def evaluate_rows(tables: set[str] | None = None, tolerance: float = TOLERANCE) -> list[dict[str, Any]]:
    """Measure every row (each model once). ``status``: ``ok`` (every required figure within tolerance), ``OFF``
    (a required figure outside it), ``recon`` (a reconstruction: nothing required), ``known`` (FLOPs required and
    within tolerance; the paper's params figure is a documented misprint)."""
    cache: dict[str, dict[str, float]] = {}
    out = []
    for row in ROWS:
        if tables and row.table not in tables:
            continue
        ref = get_entry(row.model).paper
        if ref is None:
            raise ValueError(f"zoo row {row.table}/{row.label}: model {row.model!r} has no paper figures")
        if row.model not in cache:
            cache[row.model] = measure(row.model)
        m = cache[row.model]
        paper_params = ref.params if row.params_column else None
        d_g, d_p = _delta(m["gflops"], ref.gflops), _delta(m["params_m"], paper_params)
        required = [d for d, chk in ((d_g, ref.check_gflops), (d_p, ref.check_params)) if chk and d is not None]
        if ref.reconstruction:
            status = "recon"
        elif any(abs(d) > tolerance for d in required):
            status = "OFF"
        elif d_p is not None and not ref.check_params:
            status = "known"
        else:
            status = "ok"
        out.append({"table": row.table, "label": row.label, "model": row.model, "gflops": ref.gflops,
                    "params": paper_params, "check_gflops": ref.check_gflops,
                    "check_params": paper_params is not None and ref.check_params, "note": ref.note,
                    "ours_gflops": m["gflops"], "ours_params_m": m["params_m"], "imgsz": m["imgsz"],
                    "params_rule": m["params_rule"], "delta_gflops": d_g, "delta_params": d_p, "status": status})
    return out
