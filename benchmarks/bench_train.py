"""Training throughput (images/s) and batch-1 inference latency: gradpath vs ultralytics, side by side.

Both sides get the same collated ``shapes`` batches (imgsz, batch) and a model of about the same size
(gradpath ``yolor-elan`` scaled by ``--width/--depth`` vs ultralytics ``--peer-model``, built from its yaml, no
weights), and are timed on the same machine, one after the other, with the same number of CPU threads.
A training step = forward + the task's seg loss + backward + AdamW step (data loading excluded on both sides);
latency = median fused eval forward at batch 1. ultralytics is NOT a dependency: it runs in a separate venv
(``python3.11 -m venv /tmp/ultra-venv2 && /tmp/ultra-venv2/bin/pip install torch==<ours> torchvision==<ours>
ultralytics`` — the SAME torch as ours, or the comparison measures torch builds, not models) given by
``--peer-python``; without it only gradpath's numbers are printed. A benchmark, never a timed test.

    .venv/bin/python benchmarks/bench_train.py --imgsz 320 --batch 8 --iters 6
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEER = r'''
import json, statistics, sys, time, torch
torch.set_num_threads(int(sys.argv[3]))
from ultralytics.nn.tasks import SegmentationModel
from ultralytics.cfg import get_cfg
from ultralytics.utils import DEFAULT_CFG
batches = torch.load(sys.argv[1], weights_only=True)
iters, warm = int(sys.argv[4]), int(sys.argv[5])
m = SegmentationModel(sys.argv[2], nc=int(sys.argv[6]), verbose=False)
if sys.argv[8] == "1":
    m = m.to(memory_format=torch.channels_last)
m.args = get_cfg(DEFAULT_CFG, {"overlap_mask": False})
m.train()
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
def step(b):
    t = b["targets"]
    batch = {"img": b["img"].float() / 255, "batch_idx": t[:, 0], "cls": t[:, 1:2], "bboxes": t[:, 2:6],
             "masks": b["masks"].float()}
    loss, _ = m.loss(batch)
    loss.sum().backward(); opt.step(); opt.zero_grad(set_to_none=True)
times = []
for i in range(warm + iters):
    t0 = time.perf_counter(); step(batches[i % len(batches)]); times.append(time.perf_counter() - t0)
train_s = statistics.median(times[warm:])
prof_n = int(sys.argv[7])
if prof_n:
    from torch.profiler import profile as tprof
    with tprof() as pr:
        step(batches[0])
    print("== peer: one training step ==", file=sys.stderr)
    print(pr.key_averages().table(sort_by="self_cpu_time_total", row_limit=prof_n), file=sys.stderr)
n_params = sum(p.numel() for p in m.parameters())
m.eval(); m.fuse(verbose=False)
x = batches[0]["img"][:1].float() / 255
from torch.utils.flop_counter import FlopCounterMode
with torch.no_grad(), FlopCounterMode(display=False) as fc:
    m(x)
lat = []
with torch.no_grad():
    for i in range(warm + 3 * iters):
        t0 = time.perf_counter(); m(x); lat.append(time.perf_counter() - t0)
    if prof_n:
        with tprof() as pr:
            m(x)
        print("== peer: one eval forward (b=1, fused) ==", file=sys.stderr)
        print(pr.key_averages().table(sort_by="self_cpu_time_total", row_limit=prof_n), file=sys.stderr)
print(json.dumps({"params": n_params, "gflops": fc.get_total_flops() / 1e9, "torch": torch.__version__,
                  "train_step_s": train_s, "latency_ms": 1000 * statistics.median(lat[warm:])}))
'''


def gradpath_side(batches: list[dict], args) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from gradpath.models import create_model
    from gradpath.nn import fuse_model, to_channels_last
    from gradpath.tasks.segment import SegmentLoss

    torch.set_num_threads(args.threads)
    m = create_model("yolor-elan", num_classes=args.nc, width=args.width, depth=args.depth).train()
    if not args.nchw:
        to_channels_last(m)  # what gradpath's Trainer does on CPU
    loss_fn = SegmentLoss(m)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)

    def step(b: dict) -> None:
        loss, _ = loss_fn(m(b["img"].float() / 255), b["targets"], b["masks"])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = []
    for i in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        step(batches[i % len(batches)])
        times.append(time.perf_counter() - t0)
    if args.profile:
        with torch.profiler.profile() as pr:
            step(batches[0])
        print("== gradpath: one training step ==", file=sys.stderr)
        print(pr.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile), file=sys.stderr)
    n_params = sum(p.numel() for p in m.parameters())
    m.eval()
    fuse_model(m)
    x = batches[0]["img"][:1].float() / 255
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m(x)
    lat = []
    with torch.no_grad():
        for _ in range(args.warmup + 3 * args.iters):
            t0 = time.perf_counter()
            m(x)
            lat.append(time.perf_counter() - t0)
        if args.profile:
            with torch.profiler.profile() as pr:
                m(x)
            print("== gradpath: one eval forward (b=1, fused) ==", file=sys.stderr)
            print(pr.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile), file=sys.stderr)
    return {"params": n_params, "gflops": fc.get_total_flops() / 1e9, "torch": torch.__version__,
            "train_step_s": statistics.median(times[args.warmup:]),
            "latency_ms": 1000 * statistics.median(lat[args.warmup:])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=6, help="timed training steps (latency: 3x as many forwards)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--width", type=float, default=0.26,
                   help="gradpath yolor-elan width; 0.26 matches yolov8n-seg FLOPs at 320 (2.86 vs 2.84 G, nc=3)")
    p.add_argument("--depth", type=float, default=0.34)
    p.add_argument("--peer-python", default="/tmp/ultra-venv2/bin/python")
    p.add_argument("--peer-model", default="yolov8n-seg.yaml")
    p.add_argument("--nchw", action="store_true", help="keep gradpath NCHW (the trainer uses channels-last on CPU)")
    p.add_argument("--peer-channels-last", action="store_true",
                   help="also give the peer channels-last weights (not what ultralytics does by itself)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="also print torch.profiler's top-N ops (self CPU) of one train step and one eval forward")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON (benchmarks/run_all.py reads it)")
    args = p.parse_args()

    import torch

    from gradpath.data import build_dataset, collate_fn, load_data_config

    cfg = load_data_config("shapes")
    args.nc = cfg.nc
    ds = build_dataset(cfg, "train", imgsz=args.imgsz, augment=True)
    torch.manual_seed(0)
    batches = [collate_fn([ds[i * args.batch + k] for k in range(args.batch)]) for i in range(3)]
    batches = [{k: b[k] for k in ("img", "targets", "masks")} for b in batches]

    rows = {"gradpath yolor-elan": gradpath_side(batches, args)}
    if Path(args.peer_python).exists():
        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / "batches.pt"
            torch.save(batches, f)
            r = subprocess.run([args.peer_python, "-c", PEER, str(f), args.peer_model, str(args.threads),
                                str(args.iters), str(args.warmup), str(args.nc),
                                str(args.profile), str(int(args.peer_channels_last))], capture_output=True, text=True)
            if args.profile:
                print(r.stderr, file=sys.stderr)
            if r.returncode == 0:
                rows[f"ultralytics {args.peer_model}"] = json.loads(r.stdout.strip().splitlines()[-1])
            else:
                print(f"peer failed:\n{r.stderr[-2000:]}", file=sys.stderr)
    else:
        print(f"(no peer at {args.peer_python}: gradpath only)")
    print(f"imgsz {args.imgsz}, batch {args.batch}, {args.threads} threads, {args.iters} timed steps; gradpath "
          f"{'NCHW' if args.nchw else 'channels-last'}, peer {'channels-last' if args.peer_channels_last else 'NCHW'}")
    print(f"{'model':<34}{'torch':>14}{'params M':>9}{f'GFLOPs@{args.imgsz}':>12}{'train img/s':>13}"
          f"{'latency ms (b=1)':>18}")
    for name, r in rows.items():
        print(f"{name:<34}{r['torch']:>14}{r['params'] / 1e6:>9.2f}{r['gflops']:>12.3f}"
              f"{args.batch / r['train_step_s']:>13.2f}{r['latency_ms']:>18.2f}")
    if len(rows) == 2:
        g, u = rows.values()
        print(f"ratio gradpath/peer: training throughput {u['train_step_s'] / g['train_step_s']:.2f}x, "
              f"inference speed {u['latency_ms'] / g['latency_ms']:.2f}x (>1 = gradpath faster)")
    if args.json:
        g = rows["gradpath yolor-elan"]
        u = rows.get(f"ultralytics {args.peer_model}")
        model = args.peer_model.removesuffix(".yaml")
        out = [{"key": "seg_train", "work": f"seg train step b{args.batch}@{args.imgsz}, yolor-elan (w {args.width}) "
                f"vs {model} at equal FLOPs", "gradpath": args.batch / g["train_step_s"],
                "peer": args.batch / u["train_step_s"] if u else None, "unit": "img/s", "higher_is_better": True},
               {"key": "seg_latency", "work": f"seg inference b1@{args.imgsz} (fused), yolor-elan vs {model}",
                "gradpath": g["latency_ms"], "peer": u["latency_ms"] if u else None, "unit": "ms",
                "higher_is_better": False}]
        Path(args.json).write_text(json.dumps(
            {"bench": "train", "threads": args.threads, "peer_lib": f"ultralytics {model}" if u else None,
             "torch": {"gradpath": g["torch"], "peer": u["torch"] if u else None},
             "config": {k: v for k, v in vars(args).items() if k not in ("json", "nc")}, "sides": rows, "rows": out},
            indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
