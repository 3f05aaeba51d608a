"""``gradpath predict --weights W --source IMG|DIR``: run a trained model on images and save what it sees."""
from __future__ import annotations

import argparse

from gradpath.commands import COMMANDS
from gradpath.commands._weights import add_task_args, add_weights_args, load_weights


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help=COMMANDS["predict"][1],
                       description="Run the checkpoint on each image and write predictions.json (and, unless "
                       "--no-images, annotated images) to --out. Segment: letterboxed input, masks decoded at the "
                       "original resolution, boxes in pixels, masks as COCO RLE. Classify: the top-5 classes.")
    add_weights_args(p)
    p.add_argument("--source", required=True, help="an image file or a folder of images")
    p.add_argument("--out", help="output folder (default runs/<task>/predict)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or N (default: CUDA if present, else CPU)")
    p.add_argument("--no-images", action="store_true", help="write predictions.json only")
    add_task_args(p, "predict")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model, ck, commands, imgsz = load_weights(args, "predict")
    if args.out is None:
        args.out = f"runs/{ck['task']}/predict"
    return int(commands.run_predict(args, model, ck, imgsz) or 0)
