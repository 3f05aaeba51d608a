"""Does ``torch.compile`` pay on this machine? Eager vs compiled training steps of the same model, side by side.

Two copies of one model (same initial weights), each with its own AdamW: one runs eagerly, one has its forward
compiled (inductor; the backward is compiled with it). The seg loss stays eager on both (its target assignment
has data-dependent shapes). Reported: the compile time (the first compiled step minus an eager step), the median
step of each side over interleaved rounds (so load on the machine hits both alike), the steps a run needs to pay
the compile back, and how far the compiled side's first loss and gradients are from the eager side's.

    .venv/bin/python benchmarks/bench_compile.py --imgsz 320 --batch 8 --rounds 6
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="yolor-elan")
    p.add_argument("--width", type=float, default=0.26)
    p.add_argument("--depth", type=float, default=0.34)
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=6, help="timed rounds, each one eager and one compiled step")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--mode", default="default", help="torch.compile mode (default, max-autotune-no-cudagraphs)")
    p.add_argument("--nchw", action="store_true", help="keep NCHW (the trainer uses channels-last on CPU)")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    args = p.parse_args()

    import torch

    from gradpath.data import build_dataset, collate_fn, load_data_config
    from gradpath.models import create_model
    from gradpath.nn import to_channels_last
    from gradpath.tasks.segment import SegmentLoss

    torch.set_num_threads(args.threads)
    cfg = load_data_config("shapes")
    ds = build_dataset(cfg, "train", imgsz=args.imgsz, augment=True)
    torch.manual_seed(0)
    batches = [collate_fn([ds[i * args.batch + k] for k in range(args.batch)]) for i in range(3)]
    torch.manual_seed(0)
    eager = create_model(args.model, num_classes=cfg.nc, width=args.width, depth=args.depth).train()
    if not args.nchw:
        to_channels_last(eager)
    compiled_model = copy.deepcopy(eager)
    sides = {"eager": (eager, eager), "compiled": (compiled_model, torch.compile(compiled_model, mode=args.mode))}
    state = {k: (SegmentLoss(m), torch.optim.AdamW(m.parameters(), lr=1e-3)) for k, (m, _) in sides.items()}

    def step(side: str, b: dict, update: bool = True) -> float:
        _, run = sides[side]
        loss_fn, opt = state[side]
        t0 = time.perf_counter()
        loss, _ = loss_fn(run(b["img"].float() / 255), b["targets"], b["masks"])
        loss.backward()
        if update:
            opt.step()
            opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    # Agreement first, from the same weights: loss and gradients of one step, no update.
    first = {}
    for side in sides:
        t = step(side, batches[0], update=False)
        m = sides[side][0]
        first[side] = (t, [p.grad.clone() for p in m.parameters()])
        state[side][1].zero_grad(set_to_none=True)
    grads_e, grads_c = first["eager"][1], first["compiled"][1]
    rel = max(((a - b).norm() / a.norm().clamp_min(1e-12)).item() for a, b in zip(grads_e, grads_c))
    ge, gc = torch.cat([g.flatten() for g in grads_e]), torch.cat([g.flatten() for g in grads_c])
    rel_all = ((ge - gc).norm() / ge.norm()).item()
    compile_s = first["compiled"][0] - first["eager"][0]
    # A few untimed steps on both sides (the compiled side may recompile once for the training-mode graph).
    for i in range(2):
        for side in sides:
            step(side, batches[i % 3])
    times = {side: [] for side in sides}
    for r in range(args.rounds):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for side in order:
            times[side].append(step(side, batches[r % 3]))
    med = {side: statistics.median(t) for side, t in times.items()}
    gain = med["eager"] - med["compiled"]
    payback = compile_s / gain if gain > 0 else None
    out = {"model": args.model, "width": args.width, "depth": args.depth, "imgsz": args.imgsz, "batch": args.batch,
           "threads": args.threads, "mode": args.mode, "layout": "NCHW" if args.nchw else "channels-last",
           "torch": torch.__version__, "compile_s": round(compile_s, 1),
           "step_s": {k: round(v, 4) for k, v in med.items()},
           "img_per_s": {k: round(args.batch / v, 2) for k, v in med.items()},
           "speedup": round(med["eager"] / med["compiled"], 3), "payback_steps": payback and round(payback),
           "max_rel_grad_diff": rel, "rel_grad_diff_all": rel_all}
    print(f"{args.model} w{args.width} d{args.depth} b{args.batch}@{args.imgsz}, {args.threads} thread(s), "
          f"{out['layout']}, torch {torch.__version__}, mode {args.mode}")
    print(f"compile: {compile_s:.1f} s; eager {out['img_per_s']['eager']} img/s, compiled "
          f"{out['img_per_s']['compiled']} img/s ({out['speedup']}x); pays back after "
          f"{out['payback_steps'] if payback else 'never'} steps; relative gradient difference {rel_all:.2e} over all parameters, {rel:.2e} at most per tensor")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
