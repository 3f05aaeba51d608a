"""Measure the seed-to-seed spread of a candidate small-scale recipe along training, before adopting it.

Why: a reproduction verdict is only as good as the seed noise of its recipe. A recipe is worth adopting as the
``default`` budget when its per-seed metric has stopped moving (a plateau) and the seeds agree within the
effects the paper reports (~1-2 AP). This script trains one table row with several seeds under the ``default``
recipe of its task (``--task segment``: Tables 3-8 on ``shapes``; ``--task classify``: Table 2 on ``shapes-cls``),
changed only by the options given here, evaluates every ``--val-interval`` epochs, and writes ``seed_noise.md`` /
``seed_noise.json``: for each evaluated epoch the mean ± std over seeds of the task's metrics (box/mask mAP, or
top-1/top-5), and each seed's class loss (the term the seed spread followed on Table 5).

    python scripts/seed_noise.py --model yolor-v3 --seeds 3 --jobs 3 --epochs 90 --imgsz 128 --val-interval 10
    python scripts/seed_noise.py --task classify --model csp-darknet53 --seeds 3 --jobs 3 --val-interval 5

Runs go to ``runs/seed_noise/<tag>/<model>-seed<k>``; finished runs are reused, interrupted ones resumed.
"""
from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import statistics
import sys
from pathlib import Path
from typing import Any

from gradpath import runner
from gradpath.data.shapes import default_shapes_root
from gradpath.data.shapes_cls import default_shapes_cls_root
from gradpath.engine.checkpoint import load_checkpoint
from gradpath.job_pool import job_pool
from gradpath.reproduce.recipes import small_recipe
from gradpath.reproduce.small import data_version

#: per task: the metrics summarised (the first is the tables' metric) and the training loss shown per seed
METRICS = {"segment": ("box_map", "box_map50", "mask_map"), "classify": ("top1", "top5")}
CLASS_LOSS = {"segment": "cls", "classify": "ce"}
LABELS = {"box_map": "box AP", "box_map50": "box AP50", "mask_map": "mask AP", "top1": "top-1", "top5": "top-5"}


def _recipe(args: argparse.Namespace) -> dict[str, Any]:
    base = small_recipe(args.task, "default")
    train = {**base.train, "val_interval": args.val_interval}
    if args.epochs:
        train["epochs"] = args.epochs
    if args.ema_decay:
        train["ema_decay"] = args.ema_decay
    if args.lr0:
        train["lr0"] = args.lr0
    if args.warmup_epochs is not None:
        train["warmup_epochs"] = args.warmup_epochs
    if args.optimizer:
        train["optimizer"] = args.optimizer
    overrides = dict(base.model_overrides)
    if args.width:
        overrides["width"] = args.width
    if args.depth:
        overrides["depth"] = args.depth
    options = dict(base.task_options)
    if args.imgsz:
        options["imgsz"] = args.imgsz
    data = {**base.data, **({"n_train": args.n_train} if args.n_train else {})}
    return {"model_overrides": overrides, "data": data, "task_options": options, "train": train}


def _tag(args: argparse.Namespace, recipe: dict[str, Any]) -> str:
    """The probe's folder name: the recipe's length, size and EMA, every option that changed it and the embedded
    set's version, so that two recipes (or two sets) never share (and reuse) each other's runs."""
    return (f"e{recipe['train']['epochs']}-i{recipe['task_options']['imgsz']}"
            f"-n{recipe['data'].get('n_train', 'default')}-ema{recipe['train'].get('ema_decay', 'default')}"
            + "".join(f"-{k}{v}" for k, v in (("w", args.width), ("d", args.depth), ("lr", args.lr0)) if v)
            # 0 warm-up epochs is a recipe of its own, unlike 0 for the options above ("the recipe's")
            + ("" if args.warmup_epochs is None else f"-wu{args.warmup_epochs}")
            + (f"-{args.optimizer}" if args.optimizer else "")
            + f"-data{data_version(args.task)}")  # the embedded set's generator version: other images, other runs


def _data(task: str, settings: dict[str, Any]) -> str:
    if task == "segment":
        return str(default_shapes_root(**settings) / "data.yaml")
    return str(default_shapes_cls_root(**settings))


def _train_one(task: str, model: str, seed: int, recipe: dict[str, Any], folder: str) -> str:
    path = Path(folder)
    last = path / "weights" / "last.pt"
    with open(path.parent / f"{path.name}.log", "a", encoding="utf-8") as f:
        def log(msg: str) -> None:
            f.write(msg + "\n")
            f.flush()

        if last.is_file():
            ck = load_checkpoint(last)
            if int(ck.get("epoch", -1)) + 1 >= int(recipe["train"]["epochs"]):
                return f"{path.name}: finished earlier"
            runner.resume(last, log=log, progress=False)
        else:
            data = _data(task, recipe["data"])
            train = {**recipe["train"], "seed": seed, "project": str(path.parent.parent), "name": path.name}
            runner.train(task, model, task_options={**recipe["task_options"], "data": data},
                         model_overrides=recipe["model_overrides"], train_args=train, exist_ok=True, log=log,
                         progress=False)
    return f"{path.name}: trained"


def _rows(results_csv: Path) -> list[dict[str, str]]:
    with open(results_csv, newline="") as f:
        return list(csv.DictReader(f))


def summarise(folders: list[Path], task: str = "segment") -> dict[str, Any]:
    per_seed = {p.name: _rows(p / "results.csv") for p in folders if (p / "results.csv").is_file()}
    first = METRICS[task][0]
    epochs = sorted({int(r["epoch"]) for rows in per_seed.values() for r in rows if r.get(f"metrics/{first}")})
    table = []
    for e in epochs:
        entry: dict[str, Any] = {"epoch": e + 1}
        for m in METRICS[task]:
            vals = [float(r[f"metrics/{m}"]) for rows in per_seed.values() for r in rows if int(r["epoch"]) == e and r.get(f"metrics/{m}")]
            if len(vals) == len(per_seed):
                entry[m] = {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                            "values": vals}
        loss = f"train/{CLASS_LOSS[task]}"
        cls = [float(r[loss]) for rows in per_seed.values() for r in rows if int(r["epoch"]) == e and r.get(loss)]
        entry["cls_loss"] = cls
        table.append(entry)
    seconds = {k: round(sum(float(r["time_s"]) for r in rows if r.get("time_s")), 1) for k, rows in per_seed.items()}
    loss = f"train/{CLASS_LOSS[task]}"
    by_epoch = {k: [float(r[loss]) for r in sorted(rows, key=lambda r: int(r["epoch"])) if r.get(loss)]
                for k, rows in per_seed.items()}
    return {"task": task, "runs": sorted(per_seed), "epochs": table, "train_seconds": seconds,
            "cls_loss_by_epoch": by_epoch}


def milestones(summary: dict[str, Any], below: float) -> dict[str, int | None]:
    """For each run, the first epoch (1-based) whose class loss is below ``below``; None if none is.

    Why: on ``shapes`` (and on shapes-cls before its version 3) the seeds part when one of them drops its class
    loss well ahead of the others, and the order it sets lasts to the end. When that drop happens is measurable
    from the training loss alone, every epoch, so a recipe's spread of milestone epochs can be compared over
    short runs and many seeds, without the cost of validating them."""
    return {k: next((i + 1 for i, v in enumerate(losses) if v < below), None)
            for k, losses in summary.get("cls_loss_by_epoch", {}).items()}


def _markdown(summary: dict[str, Any], recipe: dict[str, Any], jobs: int, milestone: float | None = None) -> str:
    task = summary.get("task", "segment")
    metrics = METRICS[task]
    lines = [f"# Seed noise: {', '.join(summary['runs'])}", "",
             f"Recipe: {json.dumps(recipe)}", "",
             f"Training time per run (sum of epoch times, {jobs} run(s) side by side): "
             + ", ".join(f"{k} {v / 60:.1f} min" for k, v in summary["train_seconds"].items()), "",
             "| epoch | " + " | ".join(f"{LABELS[m]} (mean ± std, %)" for m in metrics)
             + f" | per-seed {LABELS[metrics[0]]} | per-seed {CLASS_LOSS[task]} loss |",
             "|---|" + "---|" * (len(metrics) + 2)]
    for e in summary["epochs"]:
        def ms(m: str) -> str:
            return f"{100 * e[m]['mean']:.1f} ± {100 * e[m]['std']:.1f}" if m in e else "-"
        seeds = " / ".join(f"{100 * v:.1f}" for v in e.get(metrics[0], {}).get("values", []))
        cls = " / ".join(f"{v:.3f}" for v in e["cls_loss"])
        lines.append(f"| {e['epoch']} | " + " | ".join(ms(m) for m in metrics) + f" | {seeds} | {cls} |")
    if milestone is not None:
        first = milestones(summary, milestone)
        lines += ["", f"First epoch with the {CLASS_LOSS[task]} loss below {milestone:g}: "
                  + ", ".join(f"{k} {'never' if v is None else v}" for k, v in sorted(first.items()))]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=sorted(METRICS), default="segment",
                    help="segment: Tables 3-8's recipe on shapes; classify: Table 2's on shapes-cls")
    ap.add_argument("--model", default="yolor-v3")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=1, help="runs side by side, each in its own process")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads per run (default: cores // jobs)")
    ap.add_argument("--epochs", type=int, default=0, help="default: the default recipe's")
    ap.add_argument("--imgsz", type=int, default=0, help="default: the default recipe's")
    ap.add_argument("--n-train", type=int, default=0, help="default: the default recipe's")
    ap.add_argument("--ema-decay", type=float, default=0.0, help="default: the default recipe's")
    ap.add_argument("--width", type=float, default=0.0, help="model width multiplier (default: the recipe's)")
    ap.add_argument("--depth", type=float, default=0.0, help="model depth multiplier (default: the recipe's)")
    ap.add_argument("--lr0", type=float, default=0.0, help="initial learning rate (default: the recipe's)")
    ap.add_argument("--warmup-epochs", type=float, default=None, help="warm-up epochs (default: the recipe's)")
    ap.add_argument("--optimizer", choices=("sgd", "adamw"), default="",
                    help="optimizer (default: the recipe's, or the task's when the recipe names none)")
    ap.add_argument("--val-interval", type=int, default=5)
    ap.add_argument("--tag", default="", help="folder under runs/seed_noise (default: from the options)")
    ap.add_argument("--milestone", type=float, default=None, metavar="LOSS",
                    help="also report the first epoch at which each seed's class loss falls below LOSS "
                         "(e.g. 0.1 on shapes, where the seeds part at such a drop)")
    args = ap.parse_args(argv)
    recipe = _recipe(args)
    tag = args.tag or _tag(args, recipe)
    root = Path("runs/seed_noise") / tag
    folders = [root / args.task / f"{args.model}-seed{s}" for s in range(args.seeds)]
    for f in folders:
        f.mkdir(parents=True, exist_ok=True)
    _data(args.task, recipe["data"])  # generate the data once, before the jobs
    threads = args.threads or max(1, (multiprocessing.cpu_count() // max(1, args.jobs)))
    with job_pool(args.jobs, threads) as pool:  # its jobs stop (checkpointed) if this script is killed
        futs = [pool.submit(_train_one, args.task, args.model, s, recipe, str(f)) for s, f in enumerate(folders)]
        for fut in futs:
            print(fut.result(), flush=True)
    summary = summarise(folders, args.task)
    (root / "seed_noise.json").write_text(json.dumps({"recipe": recipe, **summary}, indent=1) + "\n")
    (root / "seed_noise.md").write_text(_markdown(summary, recipe, args.jobs, args.milestone))
    print((root / "seed_noise.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
