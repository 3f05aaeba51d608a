"""``gradpath train``: train a registered model on a task (``--task``) and a dataset, or continue a run (``--resume``).

Multi-GPU / multi-process: ``torchrun --nproc_per_node N -m gradpath.cli train ...`` (NCCL on GPUs, gloo on CPU).
"""
from __future__ import annotations

import argparse
from typing import Any

from dataclasses import asdict

from gradpath import runner
from gradpath.checks import check_imgsz, check_positive, check_workers
from gradpath.commands import COMMANDS
from gradpath.commands._model_args import add_override_args, model_overrides_from_args, parse_overrides
from gradpath.engine import TrainConfig
from gradpath.engine.optim import SCHEDULES
from gradpath.engine.run_dir import find_resume_checkpoint
from gradpath.engine.task import task_summary
from gradpath.errors import GradpathError
from gradpath.hyp import load_recipe
from gradpath.models.registry import get_entry
from gradpath.recipes import RECIPES
from gradpath.tasks.registry import get_task, list_tasks

# TrainConfig fields set by plain options of the same name (``--warmup-epochs`` → warmup_epochs).
TRAIN_OPTIONS = ("epochs", "batch", "optimizer", "lr0", "lrf", "schedule", "warmup_epochs", "momentum",
                 "weight_decay", "nbs", "clip_grad", "workers", "device", "val_interval", "project", "name", "seed",
                 "dist_timeout_min", "ema_decay")


def add_parser(sub) -> None:
    d = TrainConfig()
    p = sub.add_parser(
        "train", help=COMMANDS["train"][1],
        description="Train a registered model on a dataset with the recipe the paper uses (Sec. 5.1, YOLOv5's): "
        "SGD/AdamW, warm-up then cosine/linear decay, EMA, gradient clipping, AMP on CUDA. Writes "
        "runs/<task>/<name>/ with args.yaml, results.csv (a row per epoch), plots and weights/{last,best}.pt. "
        "A --recipe supplies every setting it names; options you give override it. "
        "For several processes/GPUs launch it with `torchrun --nproc_per_node N -m gradpath.cli train ...`.",
    )
    p.add_argument("--task", choices=list_tasks(), help="what to train: segment = detection + instance "
                   "segmentation, classify = image classification (default: the task the model is made for)")
    p.add_argument("--recipe", choices=sorted(RECIPES), help="start from a named recipe: "
                   + "; ".join(f"{k} = {r.description}" for k, r in sorted(RECIPES.items())))
    p.add_argument("--model", help="registered model name, e.g. yolor-elan (see `gradpath models`); "
                   "required unless --resume or --recipe")
    add_override_args(p)
    p.add_argument("--data", help="dataset: an embedded set (segment: `shapes`, classify: `shapes-cls`, generated on "
                   "first use) or a dataset yaml / folder (default: the task's embedded set)")
    p.add_argument("--imgsz", type=int, help="square training/validation size, a multiple of 32 "
                   "(default: the model's size, 640 for detectors)")
    p.add_argument("--cache", action=argparse.BooleanOptionalAction,
                   help="decode every image (and its masks) once, before training, and keep it in RAM instead of "
                   "decoding it again each epoch (default: on for the embedded sets, off otherwise; about 0.3 MB a "
                   "256-px shapes image, 12 KB a 64-px shapes-cls image)")
    p.add_argument("--hyp", action="append", metavar="KEY=VALUE|PRESET|FILE",
                   help="the task's augmentation/loss hyper-parameter, repeatable, e.g. --hyp mosaic=0.5 "
                   "--hyp box=0.05 (unknown keys are refused); segment also takes one preset, scratch-low "
                   "(the default values) or scratch-high (the paper's high-augmentation recipe), or an "
                   "ultralytics-style hyp yaml, whose optimizer keys (lr0, lrf, momentum, ...) set the training "
                   "defaults")
    g = p.add_argument_group("optimisation (the engine)")
    g.add_argument("--epochs", type=int, help=f"number of epochs (default {d.epochs})")
    g.add_argument("--batch", type=int, help=f"total batch size over all processes (default {d.batch})")
    g.add_argument("--optimizer", choices=("sgd", "adamw"),
                   help="sgd = SGD with Nesterov momentum (the paper's recipe), or adamw (default sgd)")
    g.add_argument("--lr0", type=float, help="initial learning rate (default 0.01 for sgd, 0.001 for adamw)")
    g.add_argument("--lrf", type=float, help=f"final lr as a fraction of lr0 (default {d.lrf})")
    g.add_argument("--schedule", choices=SCHEDULES, help="lr decay after warm-up: cosine, linear, or step (two "
                   "drops, at 1/3 and 2/3 of the run, to sqrt(lrf) then lrf) "
                   f"(default {d.schedule} as in YOLOv5; classify: cosine)")
    g.add_argument("--warmup-epochs", type=float,
                   help=f"linear lr/momentum warm-up length in epochs, fractions allowed (default {d.warmup_epochs})")
    g.add_argument("--momentum", type=float, help=f"SGD momentum / AdamW beta1 (default {d.momentum})")
    g.add_argument("--weight-decay", type=float,
                   help=f"weight decay of conv/linear weights per nominal batch (default {d.weight_decay})")
    g.add_argument("--nbs", type=int, help="nominal batch size: gradients accumulate until this "
                   f"many images (default {d.nbs}, classify 0; 0 = step every batch)")
    g.add_argument("--clip-grad", type=float,
                   help=f"clip the gradient L2 norm to this value, 0 disables (default {d.clip_grad})")
    g.add_argument("--no-ema", action="store_true", help="do not keep an EMA of the weights (default: keep and "
                   "evaluate the EMA)")
    g.add_argument("--ema-decay", type=float, metavar="D",
                   help=f"EMA decay (default {d.ema_decay:g}, YOLOv5's, made for COCO's ~550k updates); it averages "
                   "over ~1/(1-D) updates, so a short run needs a smaller one — the run warns when its EMA would be "
                   "made mostly of its early epochs")
    g.add_argument("--no-amp", action="store_true", help="disable mixed precision (it is only ever used on CUDA)")
    g.add_argument("--no-channels-last", action="store_true",
                   help="on CPU, train with NCHW weights (default: channels-last, which oneDNN convolutions run "
                   "without layout reorders: 1.4x faster steps on the scaled yolor-elan, one thread; yolov5s-seg "
                   "was about 5%% faster NCHW, within noise: try both on your model)")
    g = p.add_argument_group("the run")
    g.add_argument("--workers", type=int, help=f"data-loading worker processes (default {d.workers})")
    g.add_argument("--device", help="cpu, cuda, cuda:N or N (default: CUDA if available, else cpu; under "
                   "torchrun each process takes cuda:LOCAL_RANK)")
    g.add_argument("--val-interval", type=int, help="evaluate every N epochs, and always after the last (default 1)")
    g.add_argument("--no-plots", action="store_true", help="skip results.png and the task's figures")
    g.add_argument("--dist-timeout", dest="dist_timeout_min", type=float, metavar="MIN",
                   help="under torchrun: minutes a rank waits for a hung peer (a collective that never completes) "
                   f"before the run fails, instead of hanging (default {d.dist_timeout_min:g}; allow for the "
                   "validation that rank 0 runs while the others wait)")
    g.add_argument("--project", help=f"root folder of runs (default {d.project})")
    g.add_argument("--name", help=f"run folder name under <project>/<task>/ (default {d.name}; "
                   "a number is appended when it exists)")
    g.add_argument("--exist-ok", action="store_true",
                   help="reuse <project>/<task>/<name> instead of numbering a new one")
    g.add_argument("--resume", nargs="?", const="", metavar="PATH",
                   help="continue an interrupted run exactly (weights, optimizer, schedule, EMA, RNG, epoch): "
                   "PATH is its weights/last.pt or run folder; without PATH the most recent run under "
                   "<project>/<task>/ (or --name's run)")
    g.add_argument("--seed", type=int, help=f"random seed (default {d.seed})")
    g.add_argument("--quiet", action="store_true", help="no progress bars (epoch summaries are still printed)")
    p.set_defaults(func=run)


def train_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Task, model, options and ``TrainConfig`` fields from the recipe (if any) overridden by the given options."""
    recipe = RECIPES[args.recipe] if args.recipe else None
    model = args.model or (recipe.model if recipe else None)
    if not model:
        raise GradpathError("--model is required (e.g. --model yolor-elan; `gradpath models` lists them), "
                            "unless --resume or --recipe")
    # the task: --task, else the recipe's, else the one the registered model is made for
    task = args.task or (recipe.task if recipe else get_entry(model).task)
    if recipe and task != recipe.task:
        raise GradpathError(f"--recipe {args.recipe} is a {recipe.task!r} recipe; it cannot train --task {task}")
    overrides = dict(recipe.model_overrides) if recipe and model == recipe.model else {}
    overrides.update(model_overrides_from_args(args))
    task_options = dict(recipe.task_options) if recipe else {}
    train = dict(getattr(get_task(task), "train_defaults", None) or {})
    named = [h for h in args.hyp or [] if "=" not in h]
    hyp = dict(task_options.get("hyp", {}))
    if named:
        if task != "segment" or len(named) > 1:
            raise GradpathError(f"--hyp {named[0]}: a hyp preset or file is for --task segment, and only one "
                                "(give other values as KEY=VALUE)")
        preset = load_recipe(named[0])
        hyp = {**asdict(preset.segment), **hyp}
        train.update(preset.train)
    hyp.update(parse_overrides([h for h in args.hyp or [] if "=" in h], option="--hyp"))
    if hyp:
        task_options["hyp"] = hyp
    if args.data is not None:
        task_options["data"] = args.data
    if args.imgsz is not None:
        task_options["imgsz"] = check_imgsz(args.imgsz)
    if args.cache is not None:
        task_options["cache"] = args.cache
    train.update(recipe.train if recipe else {})
    train.update({k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None})
    if args.no_ema:
        train["ema"] = False
    if args.no_amp:
        train["amp"] = False
    if args.no_plots:
        train["plots"] = False
    if args.no_channels_last:
        train["channels_last"] = False
    for key in ("epochs", "batch"):
        if key in train:
            check_positive(train[key], f"--{key}")
    if "workers" in train:
        train["workers"] = check_workers(train["workers"])
    if "lr0" not in train:
        train["lr0"] = 0.001 if train.get("optimizer") == "adamw" else 0.01
    if recipe and recipe.validate_last_only and args.val_interval is None:
        train["val_interval"] = int(train.get("epochs", TrainConfig.epochs))
    return {"task": task, "model": model, "model_overrides": overrides, "task_options": task_options,
            "train_args": train}


def run(args: argparse.Namespace) -> int:
    if args.resume is not None:
        ck = find_resume_checkpoint(args.resume, args.project or TrainConfig.project, args.task,
                                    args.name if args.name not in (None, "exp") else None)
        print(f"resuming {ck}")
        trainer = runner.resume(ck, expect_model=args.model, device=args.device, workers=args.workers,
                                dist_timeout_min=args.dist_timeout_min, progress=not args.quiet)
    else:
        s = train_settings(args)
        trainer = runner.train(s["task"], s["model"], task_options=s["task_options"],
                               model_overrides=s["model_overrides"], train_args=s["train_args"],
                               exist_ok=args.exist_ok, progress=not args.quiet)
    if trainer.is_main and trainer.metrics:
        print(task_summary(trainer.task, trainer.metrics))
    return 0
