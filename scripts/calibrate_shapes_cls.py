"""Calibrate the difficulty of ``shapes-cls``: train a scaled-down Table 2 classifier for a few epochs with plain
PyTorch and print top-1 per epoch.

The set should leave the small models between about 50% and 90% top-1 and reward capacity, so this script is run
with a small and a larger model (``--width``) and the generator's ``DIFFICULTY`` knobs (``--set key=value``)
adjusted until both hold. Single process, one thread by default (the budget the set is meant for).

    .venv/bin/python scripts/calibrate_shapes_cls.py --model csp-darknet53 --width 0.25 --depth 0.34 --epochs 6
    .venv/bin/python scripts/calibrate_shapes_cls.py --bench-transforms

Any registered classifier works (``--model darknet53``, ``resnet50``, ...); ``--width``/``--depth`` are its
multipliers (``gradpath.models.classifiers``).
"""
from __future__ import annotations

import argparse
import ast
import math
import random
import sys
import time

import numpy as np
import torch
import torchvision.transforms.v2.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

import gradpath
from gradpath.data.classify import ClassifyDataset, classify_collate, load_classify_data
from gradpath.data.shapes_cls import DIFFICULTY, default_shapes_cls_root
from gradpath.errors import GradpathError
from gradpath.tasks.classify.metrics import classification_metrics


def build_model(name: str, nc: int, width: float, depth: float) -> nn.Module:
    return gradpath.create_model(name, width=width, depth=depth, num_classes=nc)


def parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in DIFFICULTY:
            raise GradpathError(f"--set {key}: not a difficulty knob; known: {', '.join(DIFFICULTY)}")
        v = ast.literal_eval(value)
        out[key] = tuple(v) if isinstance(v, list) else v
    return out


def evaluate(model: nn.Module, loader: DataLoader, names: list[str]) -> dict:
    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for imgs, y in loader:
            logits.append(model(imgs.float() / 255.0))
            labels.append(y)
    model.train()
    return classification_metrics(torch.cat(logits), torch.cat(labels), names)


def factor_accuracy(confusion: torch.Tensor, names: list[str]) -> str:
    """Accuracy on each factor of ``<colour>-<pattern>-<shape>`` names: which factor the set makes hard."""
    parts = [n.split("-") for n in names]
    if any(len(q) != 3 for q in parts):
        return ""
    out = []
    for f, label in enumerate(("colour", "pattern", "shape")):
        same = torch.tensor([[a[f] == b[f] for b in parts] for a in parts])
        out.append(f"{label} {float(confusion[same].sum()) / float(confusion.sum()):.3f}")
    # the pattern factor's own confusion (rows true, columns predicted): which patterns the model mixes up
    values = sorted({q[1] for q in parts})
    onehot = torch.tensor([[float(q[1] == v) for v in values] for q in parts], dtype=torch.float64)
    by_pattern = (onehot.T @ confusion.double() @ onehot).long().tolist()
    out.append("patterns " + ",".join(values) + " " + str(by_pattern))
    return "  ".join(out)


def bench_transforms(n: int = 3000) -> None:
    """PIL crop+resize+flip vs torchvision.transforms.v2 on a uint8 tensor, 64-px image, one thread."""
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for _ in range(2):
        t0 = time.perf_counter()
        for _ in range(n):
            im = Image.fromarray(img).resize((64, 64), Image.BILINEAR, box=(5, 7, 50, 47))
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            torch.from_numpy(np.ascontiguousarray(np.asarray(im).transpose(2, 0, 1)))
        t1 = time.perf_counter()
        for _ in range(n):
            x = torch.from_numpy(img).permute(2, 0, 1)
            F.horizontal_flip(F.resized_crop(x, 7, 5, 40, 45, [64, 64], antialias=True))
        t2 = time.perf_counter()
        print(f"PIL {(t1 - t0) / n * 1e6:.0f} us/img   torchvision v2 (tensor) {(t2 - t1) / n * 1e6:.0f} us/img")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--model", default="csp-darknet53")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--depth", type=float, default=0.34)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--imgsz", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3, help="AdamW peak learning rate")
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--n-train", type=int, default=200, help="images per class")
    p.add_argument("--n-val", type=int, default=50, help="images per class")
    p.add_argument("--seed", type=int, default=0, help="training seed (the set's seed stays 0)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--time-limit", type=float, default=float("inf"), help="stop after the epoch that passes this (s)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a DIFFICULTY knob of the generator, e.g. --set 'distractors=(2, 5)'")
    p.add_argument("--bench-transforms", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.bench_transforms:
        bench_transforms()
        return 0

    t0 = time.perf_counter()
    root = default_shapes_cls_root(n_train=args.n_train, n_val=args.n_val, imgsz=args.imgsz,
                                   difficulty=parse_sets(args.sets))
    data = load_classify_data(root)
    print(f"data {root} ({len(data.samples['train'])} train / {len(data.samples['val'])} val, {data.nc} classes)"
          f" ready in {time.perf_counter() - t0:.1f} s")
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    train = ClassifyDataset(data, "train", args.imgsz, augment=True, cache=True)
    val = ClassifyDataset(data, "val", args.imgsz, augment=False, cache=True)
    g = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(train, args.batch, shuffle=True, collate_fn=classify_collate, generator=g,
                              drop_last=True)
    val_loader = DataLoader(val, 256, collate_fn=classify_collate)

    model = build_model(args.model, data.nc, args.width, args.depth)
    params = sum(q.numel() for q in model.parameters())
    print(f"model {args.model} width {args.width} depth {args.depth}: {params / 1e6:.3f} M params")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * len(train_loader)
    warmup = min(args.warmup_steps, steps // 2)  # linear warm-up, then cosine to zero

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    t_train = time.perf_counter()
    for epoch in range(args.epochs):
        total, seen = 0.0, 0
        for imgs, y in train_loader:
            loss = loss_fn(model(imgs.float() / 255.0), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(y)
            seen += len(y)
        m = evaluate(model, val_loader, list(data.names))
        elapsed = time.perf_counter() - t_train
        print(f"epoch {epoch + 1}/{args.epochs}  loss {total / seen:.3f}  top1 {m['top1']:.4f}  "
              f"top5 {m['top5']:.4f}  {factor_accuracy(m['confusion'], list(data.names))}  {elapsed:.0f} s",
              flush=True)
        if elapsed > args.time_limit and epoch + 1 < args.epochs:
            print(f"time limit {args.time_limit:.0f} s reached: stopping (schedule not finished)")
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
