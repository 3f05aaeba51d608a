"""Small-scale reproduction of a training table: every row × seed trained with one recipe, claims tested.

Each (row, seed) run is an ordinary ``gradpath train`` run in ``<out>/<task>/<row>-seed<k>/`` (weights, curves,
results.csv), so ``gradpath val`` re-scores any row's ``best.pt`` to the number in ``results.json``. A finished run
found there is reused and an interrupted one is resumed, so a table that takes hours survives Ctrl-C and reruns.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from gradpath import runner
from gradpath.data.shapes import default_shapes_root
from gradpath.data.shapes_cls import default_shapes_cls_root
from gradpath.engine.checkpoint import load_checkpoint
from gradpath.experiments.tables import TableSpec
from gradpath.reproduce.figures import row_figures
from gradpath.reproduce.recipes import small_recipe
from gradpath.reproduce.stats import TEST_NAME, compare, mean_std

__all__ = ["run_small", "run_dir"]


def run_dir(out: Path, task: str, row: str, seed: int) -> Path:
    return out / task / f"{row}-seed{seed}"


def _data(task: str, settings: dict[str, Any]) -> str:
    if task == "segment":
        return str(default_shapes_root(**settings) / "data.yaml")
    return str(default_shapes_cls_root(**settings))


def _finished(ck: dict[str, Any]) -> bool:
    return int(ck.get("epoch", -1)) + 1 >= int(ck.get("epochs") or 0)


def train_row_seed(spec: TableSpec, row_key: str, seed: int, budget: str, out: Path, device: str | None,
                   log: Callable[[str], None], progress: bool) -> dict[str, Any]:
    """Train (or reuse, or resume) one row with one seed; returns its metrics and where its weights are."""
    recipe = small_recipe(spec.task, budget)
    row = spec.row(row_key)
    folder = run_dir(out, spec.task, row_key, seed)
    last = folder / "weights" / "last.pt"
    t0 = time.time()
    if last.is_file() and _finished(load_checkpoint(last)):
        log(f"{row_key} seed {seed}: reusing the finished run in {folder}")
    elif last.is_file():
        log(f"{row_key} seed {seed}: resuming {last}")
        runner.resume(last, device=device, log=log, progress=progress)
    else:
        train = {**recipe.train, "seed": seed, "project": str(out), "name": folder.name,
                 "val_interval": int(recipe.train["epochs"]), "device": device}
        runner.train(spec.task, row.model, task_options={**recipe.task_options, "data": _data(spec.task, recipe.data)},
                     model_overrides=recipe.model_overrides, train_args=train, exist_ok=True, log=log,
                     progress=progress)
    ck = load_checkpoint(folder / "weights" / "best.pt")
    return {"seed": seed, "metrics": dict(ck.get("metrics") or {}), "weights": str(folder / "weights" / "best.pt"),
            "run_dir": str(folder), "seconds": round(time.time() - t0, 1)}


def run_small(spec: TableSpec, *, seeds: int, budget: str, out: Path, device: str | None = None,
              log: Callable[[str], None] = print, progress: bool = True,
              counts: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Train every row of ``spec`` with ``seeds`` seeds; return the ``results.json`` content.

    ``counts`` maps a row's model to its exact FLOPs/params (``reproduce flops``), shown next to the metrics.
    """
    recipe = small_recipe(spec.task, budget)
    t0 = time.time()
    figures = row_figures(spec)
    rows = []
    for row in spec.rows:
        runs = [train_row_seed(spec, row.key, s, budget, out, device, log, progress) for s in range(seeds)]
        metric_names = sorted({k for r in runs for k, v in r["metrics"].items() if isinstance(v, (int, float))})
        summary = {m: dict(zip(("mean", "std"), mean_std([r["metrics"][m] for r in runs]))) for m in metric_names}
        rows.append({"key": row.key, "label": row.label, "model": row.model, "paper": dict(row.paper),
                     "counts": (counts or {}).get(row.model, {}), "gradient_paths": figures.get(row.key, {}),
                     "runs": runs, "summary": summary})
    by_key = {r["key"]: r for r in rows}
    claims = []
    for c in spec.claims:
        a = [r["metrics"][spec.metric] for r in by_key[c.a]["runs"]]
        b = [r["metrics"][spec.metric] for r in by_key[c.b]["runs"]]
        claims.append({"text": c.text, "a": c.a, "b": c.b, "metric": spec.metric, **compare(c.kind, a, b)})
    stds = [r["summary"][spec.metric]["std"] for r in rows if spec.metric in r["summary"]]
    return {
        "table": spec.name, "title": spec.title, "task": spec.task, "scale": "small", "budget": budget,
        "seeds": seeds, "metric": spec.metric, "test": TEST_NAME,
        "recipe": {"model_overrides": recipe.model_overrides, "data": recipe.data,
                   "task_options": recipe.task_options, "train": recipe.train, "note": recipe.note},
        "seed_std": {"max": max(stds) if stds else None, "mean": sum(stds) / len(stds) if stds else None},
        "rows": rows, "claims": claims, "seconds": round(time.time() - t0, 1),
    }
