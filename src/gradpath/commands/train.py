"""``gradpath train``: train a registered model on a dataset (``--task segment``: the paper's Sec. 5 setting).

Multi-GPU / multi-process: ``torchrun --nproc_per_node N -m gradpath.cli train ...`` (NCCL on GPUs, gloo on CPU).
"""
from __future__ import annotations

from pathlib import Path

TASKS = ("segment",)


def add_parser(sub) -> None:
    from gradpath.engine.trainer import TrainConfig

    d = TrainConfig()
    p = sub.add_parser(
        "train", help="train a model (detection + instance segmentation) and write runs/<task>/<name>/",
        description="Train a registered model on a dataset with the YOLOv5-r6.2 recipe the paper uses "
        "(Sec. 5.1): SGD/AdamW, warm-up then cosine/linear decay, EMA, gradient clipping, AMP on CUDA. Writes "
        "runs/<task>/<name>/ with args.yaml, results.csv (a row per epoch), plots and weights/{last,best}.pt. "
        "For several processes/GPUs launch it with `torchrun --nproc_per_node N -m gradpath.cli train ...`.",
    )
    p.add_argument("--task", default="segment", choices=TASKS,
                   help="what to train: segment = detection + instance segmentation (default)")
    p.add_argument("--model", help="registered model name, e.g. yolor-elan (see `gradpath models`); "
                   "required unless --resume")
    p.add_argument("--data", default="shapes", help="dataset: `shapes` (embedded, generated on first use) or an "
                   "ultralytics-style yaml with path/train/val/names (YOLO txt or COCO json splits)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"number of epochs (default {d.epochs})")
    p.add_argument("--imgsz", type=int, help="square training/validation size, a multiple of 32 "
                   "(default: the model's size, 640 for detectors)")
    p.add_argument("--batch", type=int, default=d.batch, help=f"total batch size over all processes (default {d.batch})")
    p.add_argument("--optimizer", default=d.optimizer, choices=("sgd", "adamw"),
                   help="sgd = SGD with Nesterov momentum (the paper's recipe), or adamw (default sgd)")
    p.add_argument("--lr0", type=float, help="initial learning rate (default 0.01 for sgd, 0.001 for adamw)")
    p.add_argument("--lrf", type=float, default=d.lrf, help=f"final lr as a fraction of lr0 (default {d.lrf})")
    p.add_argument("--schedule", default=d.schedule, choices=("cosine", "linear"),
                   help=f"lr decay after warm-up (default {d.schedule})")
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs,
                   help=f"linear lr/momentum warm-up length in epochs, fractions allowed (default {d.warmup_epochs})")
    p.add_argument("--momentum", type=float, default=d.momentum, help=f"SGD momentum / AdamW beta1 (default {d.momentum})")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help=f"weight decay of conv/linear weights per nominal batch (default {d.weight_decay})")
    p.add_argument("--nbs", type=int, default=d.nbs, help="nominal batch size: gradients accumulate until this "
                   f"many images (default {d.nbs}; set it to --batch to step every batch)")
    p.add_argument("--clip-grad", type=float, default=d.clip_grad,
                   help=f"clip the gradient L2 norm to this value, 0 disables (default {d.clip_grad})")
    p.add_argument("--no-ema", action="store_true", help="do not keep an EMA of the weights (default: keep and "
                   "evaluate the EMA)")
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision (it is only ever used on CUDA)")
    p.add_argument("--workers", type=int, help=f"data-loading worker processes (default {d.workers})")
    p.add_argument("--device", help="cpu, cuda, cuda:N or N (default: CUDA if available, else cpu; under "
                   "torchrun each process takes cuda:LOCAL_RANK)")
    p.add_argument("--val-interval", type=int, default=d.val_interval,
                   help="evaluate every N epochs, and always after the last (default 1)")
    p.add_argument("--no-plots", action="store_true", help="skip results.png and the val prediction grid")
    p.add_argument("--project", default=d.project, help=f"root folder of runs (default {d.project})")
    p.add_argument("--name", default=d.name, help=f"run folder name under <project>/<task>/ (default {d.name}; "
                   "a number is appended when it exists)")
    p.add_argument("--exist-ok", action="store_true", help="reuse <project>/<task>/<name> instead of numbering a new one")
    p.add_argument("--resume", nargs="?", const="", metavar="PATH",
                   help="continue an interrupted run exactly (weights, optimizer, schedule, EMA, RNG, epoch): "
                   "PATH is its weights/last.pt or run folder; without PATH the most recent run under "
                   "<project>/<task>/ (or --name's run)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="model config override, repeatable, e.g. --set width=0.25 --set depth=0.34")
    p.add_argument("--hyp", action="append", metavar="KEY=VALUE",
                   help="augmentation/loss hyper-parameter, repeatable, e.g. --hyp mosaic=0.5 --hyp box=0.05")
    p.add_argument("--quiet", action="store_true", help="no progress bars (epoch summaries are still printed)")
    p.set_defaults(func=run)


def find_resume_checkpoint(resume: str, project: str, task: str, name: str | None) -> Path:
    """``--resume`` argument → a ``last.pt`` path (a file, a run folder, or the newest run when empty)."""
    from gradpath.errors import GradpathError

    if resume:
        p = Path(resume)
        if p.is_dir():
            p = p / "weights" / "last.pt"
        if not p.is_file():
            raise GradpathError(f"--resume {resume}: no checkpoint at {p}")
        return p
    base = Path(project) / task
    if name:
        p = base / name / "weights" / "last.pt"
        if p.is_file():
            return p
    runs = sorted(base.glob("*/weights/last.pt"), key=lambda q: q.stat().st_mtime)
    if not runs:
        raise GradpathError(f"--resume: no run with weights/last.pt under {base}; pass the checkpoint path")
    return runs[-1]


def run(args) -> int:
    from gradpath.commands.profile import parse_overrides
    from gradpath.errors import GradpathError
    from gradpath.tasks.segment.task import resume_segment, train_segment

    if args.resume is not None:
        ck = find_resume_checkpoint(args.resume, args.project, args.task,
                                    args.name if args.name != "exp" else None)
        print(f"resuming {ck}")
        trainer = resume_segment(ck, expect_model=args.model, device=args.device, workers=args.workers,
                                 progress=not args.quiet)
    else:
        if not args.model:
            raise GradpathError("--model is required (e.g. --model yolor-elan; `gradpath models` lists them), "
                                "unless --resume")
        lr0 = args.lr0 if args.lr0 is not None else (0.001 if args.optimizer == "adamw" else 0.01)
        train_args = dict(
            epochs=args.epochs, batch=args.batch, optimizer=args.optimizer, lr0=lr0, lrf=args.lrf,
            schedule=args.schedule, warmup_epochs=args.warmup_epochs, momentum=args.momentum,
            weight_decay=args.weight_decay, nbs=args.nbs, clip_grad=args.clip_grad, ema=not args.no_ema,
            amp=not args.no_amp, device=args.device, val_interval=args.val_interval, plots=not args.no_plots,
            project=args.project, name=args.name, seed=args.seed,
        )
        if args.workers is not None:
            train_args["workers"] = args.workers
        if args.imgsz is not None:
            train_args["imgsz"] = args.imgsz
        else:
            from gradpath.models.registry import get_entry

            train_args["imgsz"] = int(get_entry(args.model).default_imgsz)
        trainer = train_segment(args.model, args.data, model_overrides=parse_overrides(args.overrides),
                                hyp=parse_overrides(args.hyp), exist_ok=args.exist_ok, progress=not args.quiet,
                                **train_args)
    if trainer.is_main:
        m = trainer.metrics
        if m:
            print(f"box mAP50={m.get('box_map50', 0.0):.4f} mask mAP50={m.get('mask_map50', 0.0):.4f}")
    return 0
