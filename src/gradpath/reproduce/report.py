"""What a reproduction writes: ``results.json``, ``results.md`` (paper vs ours), a bar chart and the curves.

Figures are drawn on ``matplotlib.figure.Figure`` objects (no pyplot state, no backend switch).
"""
from __future__ import annotations

import csv
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from gradpath.formatting import table

__all__ = ["write_outputs", "render_markdown", "machine", "format_interval", "format_mean_std", "bar_ylim"]

METRIC_LABEL = {"box_map": "box AP", "box_map50": "box AP50", "mask_map": "mask AP", "mask_map50": "mask AP50",
                "top1": "top-1", "top5": "top-5"}


def format_interval(ci: Sequence[float] | None) -> str:
    """Welch's 95% interval of a claim's difference, in points: how much a verdict says (a "holds" for a
    ``not_worse`` claim whose interval spans ±100 points says nothing)."""
    return "-" if ci is None else f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def machine() -> dict[str, Any]:
    return {"cpu": platform.processor() or platform.machine(), "cores": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def format_mean_std(s: dict | None, scale: float = 100.0) -> str:
    """``mean ± std``; a single seed has no spread, so it says "(1 seed)" rather than a std of 0."""
    if not s:
        return "-"
    if s.get("n") == 1:
        return f"{scale * s['mean']:.1f} (1 seed)"
    return f"{scale * s['mean']:.1f} ± {scale * s['std']:.1f}"


def seeds_per_row(res: dict[str, Any]) -> str:
    """"3 seed(s) per row", or each row's count where they differ (``--rows`` gave some rows more seeds)."""
    per_row = [len(row["runs"]) for row in res["rows"]]
    if not per_row or len(set(per_row)) == 1:
        return f"{per_row[0] if per_row else res['seeds']} seed(s) per row"
    return "seeds per row: " + ", ".join(f"{row['key']} {n}" for row, n in zip(res["rows"], per_row))


def render_markdown(res: dict[str, Any]) -> str:
    """``results.md``: the recipe, a row table (paper vs ours, counts, gradient paths) and the claims' verdicts."""
    metric = res["metric"]
    extra = "mask_map" if res["task"] == "segment" else "top5"
    paper_key = {"box_map": "box_ap", "top1": "top1"}.get(metric, metric)
    paper_extra = {"mask_map": "mask_ap"}.get(extra)
    lines = [f"# {res['table']}: {res['title']}", ""]
    secs = [run["train_seconds"] for row in res["rows"] for run in row["runs"] if run.get("train_seconds")]
    side = f"{res['jobs']} at a time" if res.get("jobs") else "as many at a time as they were trained"
    trained = (f"its {len(secs)} runs trained for {sum(secs) / 3600:.2f} h in all (sum of their epoch times, "
               f"{side})" if secs else "no run time recorded")
    lines.append(f"Small scale, budget `{res['budget']}`, {seeds_per_row(res)}; {trained}; this "
                 f"invocation {res['seconds'] / 60:.1f} min ({res['machine']['cpu']}, "
                 f"{res['machine'].get('cpu_count', '?')} cores, torch {res['machine']['torch']}), {res['date']}.")
    if res["recipe"].get("note"):
        lines += ["", f"**{res['recipe']['note']}**"]
    if res.get("partial"):
        lines += ["", f"**Partial: reported with `--finished-only` from the {res['partial']['runs_done']} of "
                  f"{res['partial']['runs_asked']} runs finished so far; each row has the seeds it has (see its "
                  "runs in results.json).**"]
    r = res["recipe"]
    lines += ["", f"One recipe for every row: model overrides {r['model_overrides']}, data {r['data'] or 'default'}, "
              f"task options {r['task_options']}, training {r['train']}"
              + (f", every other training setting at the library default: {r['train_defaults']}."
                 if r.get("train_defaults") else ".")]
    if r.get("table_overrides"):
        lines += ["", f"This table overrides the recipe's scaling with {r['table_overrides']} for every row: "
                  f"{r.get('table_overrides_why') or 'no reason recorded'}."]
    lines.append("")
    headers = ["row", "model", "GFLOPs (full size)", "params M", f"paper {METRIC_LABEL.get(metric, metric)}",
               f"ours {METRIC_LABEL.get(metric, metric)} (mean ± std, %)",
               f"ours {METRIC_LABEL.get(extra, extra)} (%)", "LGP", "LSGP", "timestamps vs its reference row"]
    body = []
    for row in res["rows"]:
        c, g = row.get("counts") or {}, row.get("gradient_paths") or {}
        body.append([row["label"], row["model"],
                     f"{c['gflops']:.2f}" if c.get("gflops") is not None else "-",
                     f"{c['params_m']:.2f}" if c.get("params_m") is not None else "-",
                     f"{row['paper'][paper_key]:.1f}" if paper_key in row["paper"] else "-",
                     format_mean_std(row["summary"].get(metric)), format_mean_std(row["summary"].get(extra)),
                     g.get("lgp", "-"), g.get("lsgp", "-"),
                     timestamps_cell(g, res["rows"])])
    lines += [_md_table(headers, body), ""]
    diverged = [f"{row['key']} seed {run['seed']} (epoch {run['diverged']['epoch']}, batch {run['diverged']['batch']})"
                for row in res["rows"] for run in row["runs"] if run.get("diverged")]
    if diverged:
        lines += ["**Diverged** (the training loss became non-finite; no model came out, so the run scores 0 on "
                  "every metric): " + "; ".join(diverged) + ".", ""]
    if paper_extra:
        lines.append("Paper's mask AP: " + ", ".join(f"{row['label']} {row['paper'][paper_extra]:.1f}"
                                                      for row in res["rows"] if paper_extra in row["paper"]) + ".")
        lines.append("")
    lines += [f"Seed-to-seed std of {METRIC_LABEL.get(metric, metric)}: mean {_pct(res['seed_std']['mean'])}, "
              f"max {_pct(res['seed_std']['max'])} (percentage points).", "",
              "## Claims", "", f"Test: {res['test']}.", ""]
    cbody = []
    for c in res["claims"]:
        cbody.append([c["text"], c["kind"], "-" if c["diff"] is None else f"{100 * c['diff']:+.2f}",
                      format_interval(c.get("ci95")), "-" if c["p"] is None else f"{c['p']:.3g}",
                      f"**{c['verdict']}**"])
    lines += [_md_table(["claim", "kind", "difference (pp)", "95% interval (pp)", "p", "verdict"], cbody), ""]
    return "\n".join(lines)


def timestamps_cell(g: dict, rows: list[dict]) -> str:
    """The "timestamps vs its reference row" cell of a row whose analyzer figures are ``g``.

    Why two forms: a layer-by-layer comparison means something when the two networks share their layers (a
    stop-gradient variant and its baseline, PRN and YOLOR-v3). CSPDarknet-53 and Darknet-53 share the names of 4
    of their 73 layers, so "3/4 layers differ" would read as a finding about the network; for such a pair the cell
    says the layers do not correspond and compares the mean number of timestamps per layer instead."""
    ts = _timestamps_vs(g, rows)
    if not ts:
        return "-"
    ref = next((r.get("gradient_paths") or {} for r in rows if r["key"] == ts["row"]), {})
    layers = max(g.get("units") or 0, ref.get("units") or 0)
    if layers and 2 * ts["units_compared"] < layers:
        means = (f"; mean timestamps per layer {g['mean_timestamps']:.1f} vs {ref['mean_timestamps']:.1f}"
                 if g.get("mean_timestamps") is not None and ref.get("mean_timestamps") is not None else "")
        return (f"vs {ts['row']}: layers do not correspond ({ts['units_compared']} of {layers} share a name)"
                + means)
    return f"vs {ts['row']}: {ts['units_changed']}/{ts['units_compared']} layers differ"


def _timestamps_vs(g: dict, rows: list[dict]) -> dict | None:
    """The row's timestamp comparison; results written before the reference rule compared with the first row."""
    if g.get("timestamps_vs"):
        return g["timestamps_vs"]
    old = g.get("timestamps_vs_first")
    return {**old, "row": rows[0]["key"]} if old else None


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def plot_bars(res: dict[str, Any], out: Path) -> Path:
    """Mean ± std of the table's metric per row (one dot per seed on top)."""
    metric = res["metric"]
    rows = res["rows"]
    fig = Figure(figsize=(1.4 * len(rows) + 2, 3.6))
    ax = fig.subplots()
    x = np.arange(len(rows))
    means = [100 * r["summary"].get(metric, {}).get("mean", 0.0) for r in rows]
    stds = [100 * r["summary"].get(metric, {}).get("std", 0.0) for r in rows]
    ax.bar(x, means, yerr=stds, capsize=4, color="#7aa6c2", edgecolor="black", linewidth=0.6)
    for i, r in enumerate(rows):
        vals = [100 * run["metrics"].get(metric, 0.0) for run in r["runs"]]
        ax.scatter([i] * len(vals), vals, s=10, color="black", zorder=3)
    ax.set_xticks(x, [r["key"] for r in rows], rotation=20, ha="right", fontsize=8)
    seen = [v for i, r in enumerate(rows) for v in
            [means[i] - stds[i], means[i] + stds[i], *(100 * run["metrics"].get(metric, 0.0) for run in r["runs"])]]
    zoom = bar_ylim(seen)
    if zoom:
        ax.set_ylim(*zoom)
    ax.set_ylabel(f"{METRIC_LABEL.get(metric, metric)} (%)" + (", axis not from 0" if zoom else ""))
    ax.set_title(f"{res['table']} ({res['budget']} budget, {seeds_per_row(res)})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


def bar_ylim(values: list[float]) -> tuple[float, float] | None:
    """The y range of the bar chart when bars from 0 would hide the differences, else None (axis from 0).

    Why: Table 2's rows end at 94-98% top-1 with a std under one point; from 0 every bar looks alike. When the
    lowest value shown is above half the highest, the axis starts below the lowest by half the spread (at least
    one point), and the label says that the axis does not start at 0."""
    if not values:
        return None
    lo, hi = min(values), max(values)
    if lo <= 0.5 * hi:
        return None
    pad = max(0.5 * (hi - lo), 1.0)
    top = hi + pad if hi > 100.0 else min(100.0, hi + pad)  # percentages stop at 100
    return max(0.0, lo - pad), top


def plot_curves(res: dict[str, Any], out: Path) -> Path:
    """Training loss (sum of the loss components) per epoch, mean over seeds, one line per row."""
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    for row in res["rows"]:
        per_seed = []
        for run in row["runs"]:
            path = Path(run["run_dir"]) / "results.csv"
            if not path.is_file():  # a run that diverged in its first epoch logged none
                continue
            with open(path, newline="") as f:
                recs = list(csv.DictReader(f))
            per_seed.append([sum(float(v) for k, v in rec.items() if k.startswith("train/") and v) for rec in recs])
        n = min((len(s) for s in per_seed), default=0)
        if n == 0:
            continue
        mean = np.mean([s[:n] for s in per_seed], axis=0)
        ax.plot(np.arange(1, n + 1), mean, marker=".", label=row["key"])
    ax.set(xlabel="epoch", ylabel="training loss", title=f"{res['table']}: training curves (mean over seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


def write_outputs(res: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write results.json, results.md, bars.png and curves.png into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    res.setdefault("machine", machine())
    res.setdefault("date", time.strftime("%Y-%m-%d %H:%M"))
    paths = {"json": out / "results.json", "md": out / "results.md", "bars": out / "bars.png",
             "curves": out / "curves.png"}
    tmp = out / ".results.json.tmp"
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(paths["json"])
    paths["md"].write_text(render_markdown(res))
    plot_bars(res, paths["bars"])
    plot_curves(res, paths["curves"])
    return paths


def console_summary(res: dict[str, Any]) -> str:
    """A short plain-text table for the terminal."""
    metric = res["metric"]
    rows = [[r["key"], format_mean_std(r["summary"].get(metric))] for r in res["rows"]]
    lines = [table(["row", f"{METRIC_LABEL.get(metric, metric)} % (mean ± std)"], rows, "lr")]
    lines += [f"{c['verdict']:>14}: {c['text']}" + ("" if c["diff"] is None else f" ({100 * c['diff']:+.2f} pp"
              + (f", p={c['p']:.3g})" if c["p"] is not None else ")")) for c in res["claims"]]
    if res.get("partial"):
        lines.append(f"PARTIAL: {res['partial']['runs_done']} of {res['partial']['runs_asked']} runs finished so far")
    return "\n".join(lines)
