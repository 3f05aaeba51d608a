"""Training throughput (images/s) and batch-1 inference latency: gradpath vs ultralytics at equal FLOPs, side by
side.

Both sides get the same collated ``shapes`` batches (imgsz, batch) and a model of about the same FLOPs (gradpath
``yolor-elan`` scaled by ``--width/--depth`` vs ultralytics ``--peer-model``, built from its yaml, no weights).
A training step = forward + each side's own seg loss + backward + AdamW step (data loading excluded on both
sides); latency = fused eval forward at batch 1. gradpath trains channels-last as its Trainer does on CPU
(``--nchw`` to keep NCHW); ultralytics NCHW as its trainer does (``--peer-channels-last`` to change that).

ultralytics is NOT a dependency: it runs in a worker process in its own venv with the same torch (checked,
printed), given by ``--peer-python`` (``bash ../shared/bench/ensure_peers.sh`` or ``python3.11 -m venv V &&
V/bin/pip install torch==<ours> torchvision==<ours> ultralytics``). Rounds alternate between the sides
(benchmarks/_peer.py: load that drifts over minutes hits both alike) and each side's number is the median over
all its timed iterations. Without a peer only gradpath's numbers are printed. A benchmark, never a timed test.

    .venv/bin/python benchmarks/bench_train.py --peer-python /tmp/peers-venv/bin/python
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _peer import Peer, check_torch, row, run_sides, seg_train_step, times, write_result

PEER = r'''
import torch
torch.set_num_threads(int(sys.argv[2]))
from ultralytics.nn.tasks import SegmentationModel
from ultralytics.cfg import get_cfg
from ultralytics.utils import DEFAULT_CFG
import ultralytics
batches = torch.load(sys.argv[1], weights_only=True)
model_yaml, nc, cl = sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
M = {"i": 0}
def hello():
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "lib": "ultralytics " + ultralytics.__version__}
def build_train():
    m = SegmentationModel(model_yaml, nc=nc, verbose=False)
    if cl:
        m = m.to(memory_format=torch.channels_last)
    m.args = get_cfg(DEFAULT_CFG, {"overlap_mask": False})
    m.train()
    M["train"] = (m, torch.optim.AdamW(m.parameters(), lr=1e-3))
    return {"params": sum(p.numel() for p in m.parameters())}
def _step():
    m, opt = M["train"]
    b = batches[M["i"] % len(batches)]; M["i"] += 1
    t = b["targets"]
    batch = {"img": b["img"].float() / 255, "batch_idx": t[:, 0], "cls": t[:, 1:2], "bboxes": t[:, 2:6],
             "masks": b["masks"].float()}
    loss, _ = m.loss(batch)
    loss.sum().backward(); opt.step(); opt.zero_grad(set_to_none=True)
def train(n):
    return _times(_step, n)
def build_infer():
    m, _ = M.pop("train")
    m.eval(); m.fuse(verbose=False)
    M["x"] = batches[0]["img"][:1].float() / 255
    from torch.utils.flop_counter import FlopCounterMode
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m(M["x"])
    M["infer"] = m
    return {"gflops": fc.get_total_flops() / 1e9}
def infer(n):
    with torch.no_grad():
        return _times(lambda: M["infer"](M["x"]), n)
def profile(what, n):
    from torch.profiler import profile as tprof
    with tprof() as pr:
        if what == "train":
            _step()
        else:
            with torch.no_grad():
                M["infer"](M["x"])
    return pr.key_averages().table(sort_by="self_cpu_time_total", row_limit=int(n))
_serve({"hello": hello, "build_train": build_train, "train": train, "build_infer": build_infer, "infer": infer,
        "profile": profile})
'''


class Ours:
    """gradpath's side, with the same commands as the peer worker."""

    def __init__(self, batches: list[dict], args) -> None:
        self.batches, self.args, self.m, self.i = batches, args, {}, 0

    def build_train(self) -> dict:
        import torch

        from gradpath.models import create_model
        from gradpath.nn import to_channels_last
        from gradpath.tasks.segment import SegmentLoss

        a = self.args
        m = create_model("yolor-elan", num_classes=a.nc, width=a.width, depth=a.depth).train()
        if not a.nchw:
            to_channels_last(m)  # what gradpath's Trainer does on CPU
        self.m["train"] = (m, SegmentLoss(m), torch.optim.AdamW(m.parameters(), lr=1e-3))
        return {"params": sum(p.numel() for p in m.parameters())}

    def _step(self) -> None:
        seg_train_step(*self.m["train"], self.batches[self.i % len(self.batches)])
        self.i += 1

    def train(self, n: int) -> list[float]:
        return times(self._step, n)

    def build_infer(self) -> dict:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        from gradpath.nn import fuse_model

        m, _, _ = self.m.pop("train")
        m.eval()
        fuse_model(m)
        self.x = self.batches[0]["img"][:1].float() / 255
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            m(self.x)
        self.m["infer"] = m
        return {"gflops": fc.get_total_flops() / 1e9}

    def infer(self, n: int) -> list[float]:
        import torch

        with torch.no_grad():
            return times(lambda: self.m["infer"](self.x), n)

    def profile(self, what: str, n: int) -> str:
        import torch

        with torch.profiler.profile() as pr:
            if what == "train":
                self._step()
            else:
                with torch.no_grad():
                    self.m["infer"](self.x)
        return pr.key_averages().table(sort_by="self_cpu_time_total", row_limit=n)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=3, help="timed training steps per side per round (latency: 3x)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (ours, theirs, ours, ...)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per side before the rounds")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--width", type=float, default=0.26,
                   help="gradpath yolor-elan width; 0.26 matches yolov8n-seg FLOPs at 320 (2.87 vs 2.84 G, nc=3)")
    p.add_argument("--depth", type=float, default=0.34)
    p.add_argument("--peer-python", default="/tmp/peers-venv/bin/python", help="python of a venv with ultralytics")
    p.add_argument("--peer-model", default="yolov8n-seg.yaml")
    p.add_argument("--nchw", action="store_true", help="keep gradpath NCHW (the trainer uses channels-last on CPU)")
    p.add_argument("--peer-channels-last", action="store_true",
                   help="also give the peer channels-last weights (not what ultralytics does by itself)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="also print torch.profiler's top-N ops (self CPU) of one train step and one eval forward")
    p.add_argument("--allow-torch-mismatch", action="store_true")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON (benchmarks/run_all.py reads it)")
    args = p.parse_args()

    import torch

    from gradpath.data import build_dataset, collate_fn, load_data_config

    torch.set_num_threads(args.threads)
    cfg = load_data_config("shapes")
    args.nc = cfg.nc
    ds = build_dataset(cfg, "train", imgsz=args.imgsz, augment=True)
    torch.manual_seed(0)
    batches = [collate_fn([ds[i * args.batch + k] for k in range(args.batch)]) for i in range(3)]
    batches = [{k: b[k] for k in ("img", "targets", "masks")} for b in batches]
    ours = Ours(batches, args)
    peer, info = None, {}
    tmp = tempfile.TemporaryDirectory()
    model = args.peer_model.removesuffix(".yaml")
    if Path(args.peer_python).exists():
        f = Path(tmp.name) / "batches.pt"
        torch.save(batches, f)
        peer = Peer(args.peer_python, PEER, [str(f), str(args.threads), args.peer_model, str(args.nc),
                                             str(int(args.peer_channels_last))])
        info = peer.ask("hello")
        check_torch(torch.__version__, info["torch"], args.allow_torch_mismatch)
    else:
        print(f"(no peer at {args.peer_python}: gradpath only)")
    print(f"imgsz {args.imgsz}, batch {args.batch}, {args.threads} threads, {args.rounds} rounds x {args.iters} "
          f"timed steps; gradpath {'NCHW' if args.nchw else 'channels-last'}, peer "
          f"{'channels-last' if args.peer_channels_last else 'NCHW'} ({info.get('lib', 'no peer')})", flush=True)
    try:
        size = {"gradpath": ours.build_train()}
        sides = {"gradpath": ours.train}
        if peer:
            size[model] = peer.ask("build_train")
            sides[model] = lambda n: peer.ask("train", n)
        step = run_sides(sides, args.warmup, args.rounds, args.iters)
        if args.profile:
            print("== gradpath: one training step ==\n" + ours.profile("train", args.profile), file=sys.stderr)
            if peer:
                print("== peer: one training step ==\n" + peer.ask("profile", "train", args.profile),
                      file=sys.stderr)
        size["gradpath"].update(ours.build_infer())
        sides = {"gradpath": ours.infer}
        if peer:
            size[model].update(peer.ask("build_infer"))
            sides[model] = lambda n: peer.ask("infer", n)
        lat = run_sides(sides, args.warmup, args.rounds, 3 * args.iters)
        if args.profile:
            print("== gradpath: one eval forward (b=1, fused) ==\n" + ours.profile("infer", args.profile),
                  file=sys.stderr)
            if peer:
                print("== peer: one eval forward (b=1, fused) ==\n" + peer.ask("profile", "infer", args.profile),
                      file=sys.stderr)
    finally:
        if peer:
            peer.close()
        tmp.cleanup()
    print(f"{'model':<28}{'params M':>9}{f'GFLOPs@{args.imgsz}':>12}{'train img/s':>13}{'latency ms (b=1)':>18}")
    for k in step:
        print(f"{k:<28}{size[k]['params'] / 1e6:>9.2f}{size[k]['gflops']:>12.3f}{args.batch / step[k]:>13.2f}"
              f"{1000 * lat[k]:>18.2f}")
    if peer:
        print(f"ratio gradpath/peer: training throughput {step[model] / step['gradpath']:.2f}x, "
              f"inference speed {lat[model] / lat['gradpath']:.2f}x (>1 = gradpath faster)")
    rows = [row("seg_train", f"seg train step b{args.batch}@{args.imgsz}, yolor-elan (w {args.width}, "
                f"{size['gradpath']['gflops']:.2f} G) vs {model} ({size[model]['gflops']:.2f} G)" if peer else
                f"seg train step b{args.batch}@{args.imgsz}, yolor-elan (w {args.width})",
                args.batch / step["gradpath"], args.batch / step[model] if peer else None, "img/s", True),
            row("seg_latency", f"seg inference b1@{args.imgsz} (fused), yolor-elan vs {model}",
                1000 * lat["gradpath"], 1000 * lat[model] if peer else None, "ms", False)]
    write_result(args, "train", info, rows, sides=size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
