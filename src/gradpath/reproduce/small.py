"""Small-scale reproduction of a training table: every row × seed trained with one recipe, claims tested.

Each (model, seed) run is an ordinary ``gradpath train`` run in ``<runs>/<budget>/<task>/<model>-seed<k>/``
(weights, curves, results.csv), so ``gradpath val`` re-scores any row's ``best.pt`` to the number in
``results.json``. The folder is keyed by what determines the run — task, budget (hence the recipe), model and seed —
not by the table: YOLOR-v3 is a row of Tables 5-8 and is trained once for all of them, and a ``quick`` run is
never taken for a ``default`` one. A finished run found there is reused and an interrupted one is resumed, so a
table that takes hours survives Ctrl-C and reruns. ``recipe.json`` in each folder records the recipe the run was
started with; a folder whose recipe differs from today's is refused rather than silently mixed into a table.
"""
from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

from gradpath import runner
from gradpath.data.shapes import GENERATOR_VERSION as SHAPES_VERSION, default_shapes_root
from gradpath.data.shapes_cls import GENERATOR_VERSION as SHAPES_CLS_VERSION, default_shapes_cls_root
from gradpath.engine.checkpoint import load_checkpoint
from gradpath.engine.config import TrainConfig
from gradpath.errors import GradpathError, TrainingDiverged
from gradpath.job_pool import job_pool
from gradpath.experiments.tables import TABLES, TableSpec
from gradpath.reproduce.figures import row_figures
from gradpath.reproduce.recipes import small_recipe
from gradpath.reproduce.stats import TEST_NAME, compare, mean_std

__all__ = ["run_small", "run_dir", "effective_overrides", "DIVERGED"]

#: written in a run's folder when its training loss became non-finite (epoch, batch, message)
DIVERGED = "diverged.json"


def run_dir(runs: Path, task: str, budget: str, model: str, seed: int, table_overrides: dict[str, Any] | None = None
            ) -> Path:
    """Where the run of ``model`` with ``seed`` under the ``budget`` recipe of ``task`` lives (shared by tables).

    A table that overrides the recipe's scaling (``TableSpec.model_overrides``) trains a different network, so
    its runs get their own folder (``vovnet99-depth1.0-seed0``) instead of colliding with the recipe's."""
    tag = "".join(f"-{k}{v}" for k, v in sorted((table_overrides or {}).items()))
    return runs / budget / task / f"{model}{tag}-seed{seed}"


def effective_overrides(spec: TableSpec, budget: str) -> dict[str, Any]:
    """The width/depth multipliers every row of ``spec`` is built with: the recipe's, then the table's."""
    return {**small_recipe(spec.task, budget).model_overrides, **spec.model_overrides}


def _folder(spec: TableSpec, runs: Path, budget: str, model: str, seed: int) -> Path:
    return run_dir(runs, spec.task, budget, model, seed, spec.model_overrides)


def data_version(task: str) -> int:
    """The generator version of the task's embedded set: a run stands for today's table only if it was trained on
    the same images (``shapes`` for detection + segmentation, ``shapes-cls`` for classification)."""
    return SHAPES_VERSION if task == "segment" else SHAPES_CLS_VERSION


#: The generator version a recipe.json written before it recorded one stands for: ``shapes`` was at version 1
#: until then and every such segment run was trained on it; no classification run was saved before the field.
_LEGACY_DATA_VERSION = {"segment": 1}


def _fingerprint(spec: TableSpec, budget: str, model: str, seed: int) -> dict[str, Any]:
    """What must be equal for a saved run to stand for this (model, seed) under today's recipe and data."""
    return json.loads(json.dumps({"task": spec.task, "budget": budget, "model": model, "seed": seed,
                                  "recipe": asdict(small_recipe(spec.task, budget)),
                                  "model_overrides": effective_overrides(spec, budget),
                                  "data_version": data_version(spec.task)}))


def _check_recipe(folder: Path, expected: dict[str, Any]) -> None:
    """Refuse a saved run trained with another recipe (the recipes changed since, or the folder was copied)."""
    f = folder / "recipe.json"
    if not f.is_file():
        raise GradpathError(f"{folder}: a run without recipe.json; it cannot be matched to today's recipe — "
                            "remove the folder to retrain it")
    saved = json.loads(f.read_text())
    if "data_version" not in saved and saved.get("task") in _LEGACY_DATA_VERSION:
        saved["data_version"] = _LEGACY_DATA_VERSION[saved["task"]]
    if saved.get("data_version") != expected["data_version"]:
        raise GradpathError(f"{f}: this run was trained on version {saved.get('data_version', 'unknown')} of the "
                            f"embedded set, today's is {expected['data_version']}; remove the folder to retrain it")
    if saved != expected:
        diff = sorted(k for k in expected["recipe"] if saved.get("recipe", {}).get(k) != expected["recipe"][k])
        raise GradpathError(f"{f}: this run was trained with another recipe (differs in: "
                            f"{', '.join(diff) or 'model/seed/budget'}); remove the folder to retrain it")


#: TrainConfig fields that differ from run to run of a table (or only say where and how it runs)
_PER_RUN = {"seed", "project", "name", "device", "val_interval", "plots", "workers", "dist_timeout_min"}


def implicit_train_settings(train: dict[str, Any]) -> dict[str, Any]:
    """The training settings a recipe does not name, at the ``TrainConfig`` defaults its runs get.

    Why: ``runner.train`` builds ``TrainConfig(**recipe.train)``, so every field the recipe leaves out is the
    library default (SGD at lr 0.01 with a linear decay, YOLOv5's), not the ``gradpath train --task classify``
    defaults (timm-style SGD at 0.05, cosine). The report prints them, so that a recipe reads complete."""
    return {k: v for k, v in asdict(TrainConfig()).items() if k not in train and k not in _PER_RUN}


def _data(task: str, settings: dict[str, Any]) -> str:
    if task == "segment":
        return str(default_shapes_root(**settings) / "data.yaml")
    return str(default_shapes_cls_root(**settings))


def _finished(ck: dict[str, Any]) -> bool:
    return int(ck.get("epoch", -1)) + 1 >= int(ck.get("epochs") or 0)


def train_row_seed(spec: TableSpec, row_key: str, seed: int, budget: str, runs: Path, device: str | None,
                   log: Callable[[str], None], progress: bool) -> dict[str, Any]:
    """Train (or reuse, or resume) one row with one seed; returns its metrics and where its weights are.

    A run whose loss becomes non-finite is a result, not a failure of the table (Table 4's claim is that a network
    "fails to converge"): it is recorded in ``diverged.json`` next to its checkpoints and reused as such."""
    row = spec.row(row_key)
    folder = _folder(spec, runs, budget, row.model, seed)
    last = folder / "weights" / "last.pt"
    expected = _fingerprint(spec, budget, row.model, seed)
    t0 = time.time()
    diverged_file = folder / DIVERGED
    if last.is_file():
        _check_recipe(folder, expected)
    if diverged_file.is_file():
        log(f"{row_key} seed {seed}: its loss became non-finite in an earlier invocation ({diverged_file})")
        return _diverged_run(seed, folder, json.loads(diverged_file.read_text()), t0)
    try:
        _train_or_resume(spec, row, seed, budget, folder, expected, device, log, progress)
    except TrainingDiverged as e:
        record = {"epoch": e.epoch, "batch": e.batch, "checkpoint": e.checkpoint, "message": str(e)}
        diverged_file.write_text(json.dumps(record, indent=1) + "\n")
        log(f"{row_key} seed {seed}: diverged ({e}); recorded in {diverged_file}")
        return _diverged_run(seed, folder, record, t0)
    ck = load_checkpoint(folder / "weights" / "best.pt")
    return {"seed": seed, "metrics": dict(ck.get("metrics") or {}), "weights": str(folder / "weights" / "best.pt"),
            "run_dir": str(folder), "seconds": round(time.time() - t0, 1),
            "train_seconds": _epoch_seconds(folder / "results.csv")}


def _diverged_run(seed: int, folder: Path, record: dict[str, Any], t0: float) -> dict[str, Any]:
    """A run whose loss became non-finite: no model came out of it. ``run_small`` scores it 0 on every metric
    (a detector or classifier that failed to train finds nothing), and the report says so."""
    return {"seed": seed, "metrics": {}, "weights": None, "run_dir": str(folder), "diverged": record,
            "seconds": round(time.time() - t0, 1), "train_seconds": _epoch_seconds(folder / "results.csv")}


def _train_or_resume(spec: TableSpec, row: Any, seed: int, budget: str, folder: Path, expected: dict[str, Any],
                     device: str | None, log: Callable[[str], None], progress: bool) -> None:
    recipe = small_recipe(spec.task, budget)
    last = folder / "weights" / "last.pt"
    if last.is_file() and _finished(load_checkpoint(last)):
        log(f"{row.key} seed {seed}: reusing the finished run in {folder}")
    elif last.is_file():
        log(f"{row.key} seed {seed}: resuming {last}")
        runner.resume(last, device=device, log=log, progress=progress)
    else:
        train = {**recipe.train, "seed": seed, "project": str(folder.parent.parent), "name": folder.name,
                 "val_interval": int(recipe.train["epochs"]), "device": device}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "recipe.json").write_text(json.dumps(expected, indent=1) + "\n")
        runner.train(spec.task, row.model, task_options={**recipe.task_options, "data": _data(spec.task, recipe.data)},
                     model_overrides=effective_overrides(spec, budget), train_args=train, exist_ok=True, log=log,
                     progress=progress)


def _epoch_seconds(results_csv: Path) -> float | None:
    """What the run cost: the sum of its epochs' wall times (``time_s`` in results.csv), wherever it was trained."""
    if not results_csv.is_file():
        return None
    with open(results_csv, newline="") as f:
        times = [float(r["time_s"]) for r in csv.DictReader(f) if r.get("time_s")]
    return round(sum(times), 1) if times else None


#: a job that took less than this reused a finished run (or found a diverged one) rather than training
TRAINED_S = 60.0


def _clock(seconds: float) -> str:
    m = int(seconds + 30) // 60
    return f"{m // 60}:{m % 60:02d}"


def time_left(elapsed: float, trained: Sequence[float], remaining: int, jobs: int) -> str:
    """The table's progress line: time so far and, once a run has trained here, about how long the rest takes.

    Why: a table is hours of runs that each log to their own folder, so the console is the one place that can say
    when the whole will be done. The estimate is the mean time of the runs trained in this invocation (reused ones
    took no time and say nothing), times the runs left, over the runs side by side; resumed runs make it short."""
    if not remaining:
        return f"{_clock(elapsed)} elapsed, done"
    if not trained:
        return f"{_clock(elapsed)} elapsed"
    return f"{_clock(elapsed)} elapsed, about {_clock(sum(trained) / len(trained) * remaining / max(jobs, 1))} left"


def _train_job(table: str, row_key: str, seed: int, budget: str, runs: str, device: str | None
               ) -> tuple[str, float]:
    """One run in a job process; its epoch lines go to ``train.log`` in its folder (a bar per job would interleave).
    Returns the console line and the seconds the job took."""
    spec = TABLES[table]
    folder = _folder(spec, Path(runs), budget, spec.row(row_key).model, seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.log", "a", encoding="utf-8") as f:
        def log(msg: str) -> None:
            f.write(msg + "\n")
            f.flush()

        res = train_row_seed(spec, row_key, seed, budget, Path(runs), device, log=log, progress=False)
    m = res["metrics"]
    if res.get("diverged"):
        return f"{row_key} seed {seed} diverged at epoch {res['diverged']['epoch']}", res["seconds"]
    got = ", ".join(f"{k} {m[k]:.4f}" for k in (spec.metric, "box_map50") if isinstance(m.get(k), float))
    return f"{row_key} seed {seed} finished ({got})", res["seconds"]


def train_in_parallel(spec: TableSpec, *, seeds: int, budget: str, runs: Path, device: str | None, jobs: int,
                      log: Callable[[str], None], rows: Sequence[str] | None = None) -> None:
    """Train the table's (row, seed) runs ``jobs`` at a time, each in its own process with cores // jobs threads.

    Why: a table is many independent runs, and a machine with many cores (or a GPU) can hold several at once. On
    the 2-core CPU two side by side took 50-56 s per epoch each at the default budget; a single run alone was not
    timed, so whether that is faster there is unmeasured. Each run is the same as a sequential one (its own seed,
    its own folder); the results are then gathered by the sequential path, which reuses them.
    """
    _data(spec.task, small_recipe(spec.task, budget).data)     # generate the embedded set once, before the jobs
    pending, seen = [], set()
    for s in range(seeds):  # seed-major: an interrupted table has every row of its first seeds, not one row's seeds
        for row in spec.rows:
            if (row.model, s) not in seen and (rows is None or row.key in rows):
                seen.add((row.model, s))
                pending.append((spec.name, row.key, s, budget, str(runs), device))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    log(f"training {len(pending)} run(s), {jobs} at a time with {threads} thread(s) each; each run's epochs are "
        f"logged to train.log in its folder under {runs}")
    t0, trained = time.time(), []
    with job_pool(jobs, threads) as pool:  # its jobs stop (checkpointed) if this process is killed
        futures = [pool.submit(_train_job, *job) for job in pending]
        for done, fut in enumerate(futures, 1):
            message, seconds = fut.result()
            if seconds >= TRAINED_S:
                trained.append(seconds)
            log(f"[{done}/{len(futures)}] {message} · {time_left(time.time() - t0, trained, len(futures) - done, jobs)}")


def is_done(spec: TableSpec, model: str, seed: int, budget: str, runs: Path) -> bool:
    """Whether the run of (``model``, ``seed``) has finished all its epochs or diverged (reading only)."""
    folder = _folder(spec, runs, budget, model, seed)
    last = folder / "weights" / "last.pt"
    if (folder / DIVERGED).is_file():
        return True
    return last.is_file() and (folder / "weights" / "best.pt").is_file() and _finished(load_checkpoint(last))


def run_small(spec: TableSpec, *, seeds: int, budget: str, runs: Path, device: str | None = None,
              log: Callable[[str], None] = print, progress: bool = True,
              counts: dict[str, dict[str, Any]] | None = None, jobs: int = 1,
              finished_only: bool = False, rows: Sequence[str] | None = None) -> dict[str, Any]:
    """Train every row of ``spec`` with ``seeds`` seeds (runs under ``runs``); return the ``results.json`` content.

    ``counts`` maps a row's model to its exact FLOPs/params (``reproduce flops``), shown next to the metrics.
    ``jobs`` > 1 trains that many runs side by side first (``train_in_parallel``). ``finished_only`` trains
    nothing: the table is reported from the runs that have finished (or diverged) so far — a look at a table that
    is still training elsewhere — and says so; each row then has the seeds it has, and a claim whose rows have
    fewer than two is not tested.

    ``rows`` (row keys) trains only those rows, e.g. more seeds for the two rows of one claim whose verdict the
    table's seeds could not settle; every other row is reported with the runs it has finished among the first
    ``seeds`` seeds (its ``n`` says how many), so the table stays whole and says which rows have more seeds.
    """
    only = list(rows) if rows is not None else None  # ``rows`` is reused below for the report's rows
    if only is not None:
        unknown = [k for k in only if k not in {r.key for r in spec.rows}]
        if unknown:
            raise GradpathError(f"--rows: {spec.name} has no row {unknown[0]!r}; its rows: "
                                f"{', '.join(r.key for r in spec.rows)}")
    recipe = small_recipe(spec.task, budget)
    t0 = time.time()
    if jobs > 1 and not finished_only:
        train_in_parallel(spec, seeds=seeds, budget=budget, runs=runs, device=device, jobs=jobs, log=log, rows=only)
    figures = row_figures(spec)

    def wanted(row: Any, s: int) -> bool:  # train it, or report it only if it has finished
        if finished_only or (only is not None and row.key not in only):
            return is_done(spec, row.model, s, budget, runs)
        return True

    trained = {row.key: [train_row_seed(spec, row.key, s, budget, runs, device, log, progress) for s in range(seeds)
                         if wanted(row, s)]
               for row in spec.rows}
    n_done = sum(len(v) for v in trained.values())
    if finished_only:
        log(f"{spec.name}: reporting the {n_done} of {seeds * len(spec.rows)} runs finished so far (nothing trained)")
    metric_names = sorted({k for per_seed in trained.values() for r in per_seed for k, v in r["metrics"].items()
                           if isinstance(v, (int, float))} | {spec.metric})
    for r in (r for per_seed in trained.values() for r in per_seed if r.get("diverged")):
        r["metrics"] = {m: 0.0 for m in metric_names}  # no model came out of it: it finds nothing
    rows = []
    for row in spec.rows:
        per_seed = trained[row.key]
        summary = {m: {**dict(zip(("mean", "std"), mean_std([r["metrics"][m] for r in per_seed]))),
                       "n": len(per_seed)} for m in metric_names} if per_seed else {}
        rows.append({"key": row.key, "label": row.label, "model": row.model, "paper": dict(row.paper),
                     "counts": (counts or {}).get(row.model, {}), "gradient_paths": figures.get(row.key, {}),
                     "runs": per_seed, "summary": summary})
    by_key = {r["key"]: r for r in rows}
    claims = []
    for c in spec.claims:
        a = [r["metrics"][spec.metric] for r in by_key[c.a]["runs"]]
        b = [r["metrics"][spec.metric] for r in by_key[c.b]["runs"]]
        claims.append({"text": c.text, "a": c.a, "b": c.b, "metric": spec.metric, **compare(c.kind, a, b)})
    # a row with one run has no spread: its 0.0 would only dilute the std the table reached
    stds = [r["summary"][spec.metric]["std"] for r in rows if spec.metric in r["summary"] and len(r["runs"]) > 1]
    return {
        "table": spec.name, "title": spec.title, "task": spec.task, "scale": "small", "budget": budget,
        "seeds": seeds, "jobs": None if finished_only else jobs, "metric": spec.metric, "test": TEST_NAME,
        "partial": {"runs_done": n_done, "runs_asked": seeds * len(spec.rows)} if finished_only else None,
        "rows_trained": only,
        "recipe": {"model_overrides": effective_overrides(spec, budget), "data": recipe.data,
                   "data_version": data_version(spec.task), "task_options": recipe.task_options, "train": recipe.train,
                   "train_defaults": implicit_train_settings(recipe.train), "note": recipe.note,
                   "table_overrides": dict(spec.model_overrides), "table_overrides_why": spec.overrides_why},
        "seed_std": {"max": max(stds) if stds else None, "mean": sum(stds) / len(stds) if stds else None},
        "rows": rows, "claims": claims, "seconds": round(time.time() - t0, 1),
    }
