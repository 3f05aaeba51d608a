"""``gradpath val --weights W --data D``: score a trained model on a dataset split with its task's metric."""
from __future__ import annotations

import argparse

from gradpath.commands import COMMANDS
from gradpath.commands._weights import add_task_args, add_weights_args, load_weights
from gradpath.errors import GradpathError


def add_parser(sub) -> None:
    p = sub.add_parser("val", help=COMMANDS["val"][1],
                       description="Run a checkpoint over a dataset split and score it with its task's metric: "
                       "segment = pycocotools COCOeval box and mask AP@[.5:.95], AP50, AP75, per class, in original "
                       "image coordinates; classify = top-1, top-5 and per-class accuracy.")
    add_weights_args(p)
    p.add_argument("--data", required=True, help="dataset: an embedded set (`shapes`, `shapes-cls`) or a dataset "
                   "yaml / folder")
    p.add_argument("--split", default="val", choices=["val", "train"], help="split to evaluate (default val)")
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or N (default: CUDA if present, else CPU)")
    p.add_argument("--workers", type=int, default=0, help="data-loader worker processes (default 0)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    add_task_args(p, "val")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.batch < 1:
        raise GradpathError(f"--batch must be >= 1, got {args.batch}")
    model, ck, commands, imgsz = load_weights(args, "val")
    return int(commands.run_val(args, model, ck, imgsz) or 0)
