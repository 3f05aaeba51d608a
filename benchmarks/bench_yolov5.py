"""gradpath's YOLOv5-seg vs the ``yolov5`` package (7.0.x) on the SAME network: parameter counts, inference
latency and training throughput, side by side.

Why: gradpath rebuilds YOLOv5-seg (Table 8's comparison rows; ``gradpath convert --from yolov5`` imports its
weights, benchmarks/check_yolov5_import.py proves the outputs equal), so the package is the one peer with exactly
our network, and speed differences are implementation, not architecture.
- parameters: yolov5s-seg (gradpath ``yolov5l-seg`` at width 0.5, depth 0.33) and yolov5l-seg, unfused, both
  printed; they must be equal.
- inference: yolov5l-seg, batch 1 at ``--infer-imgsz`` (640), eval, no grad; gradpath's deploy form
  (``gradpath.deploy.deploy_model``: BN folded, channels-last weights) vs the package's ``fuse()``d model (BN
  folded, NCHW: what its detect.py runs).
- training step: yolov5s-seg, ``--batch`` images at ``--imgsz`` (8 @ 320) of the ``shapes`` set (the batches
  benchmarks/bench_train.py makes; the same tensors on both sides): forward + each side's own segmentation loss
  (gradpath ``SegmentLoss``; the package's ``utils/segment/loss.py`` ``ComputeLoss`` with its
  ``hyp.scratch-low.yaml`` scaled as its train.py does) + backward + SGD step (lr 0.01, momentum 0.937, Nesterov:
  YOLOv5's defaults) on both sides. gradpath in the form its Trainer uses on CPU (channels-last; ``--nchw`` to
  keep NCHW), the package NCHW as its train.py runs (``--peer-channels-last`` to give it channels-last weights).
Data loading is excluded on both sides; ratios are gradpath ÷ peer speed (> 1 = gradpath faster).

The package is NOT a dependency: it runs in a worker process in its own venv with the same torch (checked,
printed): ``python3.11 -m venv /tmp/y5-venv && /tmp/y5-venv/bin/pip install torch==<ours> torchvision==<ours>
yolov5==7.0.14 "setuptools<81"``, given by ``--peer-python``; rounds alternate between the sides
(benchmarks/_peer.py) and each side's number is the median over all timed iterations. Without a peer only
gradpath's numbers are printed. A benchmark, never a timed test.

    .venv/bin/python benchmarks/bench_yolov5.py --peer-python /tmp/y5-venv/bin/python
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _peer import Peer, check_torch, row, run_sides, seg_train_step, times, write_result

S_SCALE = {"width": 0.5, "depth": 0.33}  # yolov5s-seg = gradpath yolov5l-seg at these multiples

PEER = r'''
import os, torch
torch.set_num_threads(int(sys.argv[2]))
nc, cl = int(sys.argv[3]), sys.argv[4] == "1"
import yaml, yolov5
from yolov5.models.yolo import SegmentationModel
from yolov5.utils.segment.loss import ComputeLoss
root = os.path.dirname(yolov5.__file__)
io = torch.load(sys.argv[1], weights_only=True)
batches, x_inf = io["batches"], io["x_infer"]
M = {}
def cfg(size):
    return os.path.join(root, "models", "segment", f"yolov5{size}-seg.yaml")
def hello():
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "lib": "yolov5 " + getattr(yolov5, "__version__", "?")}
def count(m):
    return sum(p.numel() for p in m.parameters())
def params(size):
    return count(SegmentationModel(cfg(size), ch=3, nc=nc))
def build_infer():
    m = SegmentationModel(cfg("l"), ch=3, nc=nc).eval()
    n = count(m)
    M["infer"] = m.fuse()
    return {"params": n}
def infer(n):
    m = M["infer"]
    with torch.no_grad():
        return _times(lambda: m(x_inf), n)
def build_train(imgsz):
    M.pop("infer", None)
    m = SegmentationModel(cfg("s"), ch=3, nc=nc)
    n = count(m)
    if cl:
        m = m.to(memory_format=torch.channels_last)
    import glob
    found = sorted(glob.glob(os.path.join(root, "**", "hyp.scratch-low.yaml"), recursive=True))
    if not found:
        raise SystemExit(f"hyp.scratch-low.yaml not found under {root}")
    with open(found[0]) as f:
        hyp = yaml.safe_load(f)
    nl = m.model[-1].nl  # the scaling of their train.py
    hyp["box"] *= 3 / nl; hyp["cls"] *= nc / 80 * 3 / nl; hyp["obj"] *= (imgsz / 640) ** 2 * 3 / nl
    hyp["label_smoothing"] = 0.0
    m.hyp = hyp
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.937, nesterov=True)
    M["train"] = (m, ComputeLoss(m, overlap=False), opt)
    M["i"] = 0
    return {"params": n, "hyp": {k: hyp[k] for k in ("box", "cls", "obj", "anchor_t", "fl_gamma")}}
def train(n):
    m, loss_fn, opt = M["train"]
    def step():
        b = batches[M["i"] % len(batches)]; M["i"] += 1
        loss, _ = loss_fn(m(b["img"].float() / 255), b["targets"], b["masks"].float())
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    return _times(step, n)
_serve({"hello": hello, "params": params, "build_infer": build_infer, "infer": infer,
        "build_train": build_train, "train": train})
'''


class Ours:
    """gradpath's side, with the same commands as the peer worker."""

    def __init__(self, batches: list[dict], x_infer, nc: int, nchw: bool) -> None:
        self.batches, self.x_inf, self.nc, self.nchw, self.m, self.i = batches, x_infer, nc, nchw, {}, 0

    def params(self, size: str) -> int:
        from gradpath.models import create_model

        return sum(p.numel() for p in create_model("yolov5l-seg", num_classes=self.nc,
                                                    **(S_SCALE if size == "s" else {})).parameters())

    def build_infer(self) -> int:
        from gradpath.deploy import deploy_model
        from gradpath.models import create_model

        m = create_model("yolov5l-seg", num_classes=self.nc).eval()
        n = sum(p.numel() for p in m.parameters())  # before folding BN
        self.m["infer"] = deploy_model(m, "cpu").eval()
        return n

    def infer(self, n: int) -> list[float]:
        import torch

        m = self.m["infer"]
        with torch.no_grad():
            return times(lambda: m(self.x_inf), n)

    def build_train(self) -> int:
        import torch

        from gradpath.models import create_model
        from gradpath.nn import to_channels_last
        from gradpath.tasks.segment import SegmentLoss

        self.m.pop("infer", None)
        m = create_model("yolov5l-seg", num_classes=self.nc, **S_SCALE).train()
        if not self.nchw:
            to_channels_last(m)  # what gradpath's Trainer does on CPU
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.937, nesterov=True)
        self.m["train"] = (m, SegmentLoss(m), opt)
        return sum(p.numel() for p in m.parameters())

    def train(self, n: int) -> list[float]:
        m, loss_fn, opt = self.m["train"]

        def step() -> None:
            seg_train_step(m, loss_fn, opt, self.batches[self.i % len(self.batches)])
            self.i += 1

        return times(step, n)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--imgsz", type=int, default=320, help="training image size (default 320)")
    p.add_argument("--batch", type=int, default=8, help="training batch (default 8)")
    p.add_argument("--infer-imgsz", type=int, default=640, help="inference image size, batch 1 (default 640)")
    p.add_argument("--iters", type=int, default=3, help="timed iterations per side per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (ours, theirs, ours, ...)")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations per side before the rounds")
    p.add_argument("--threads", type=int, default=None, help="CPU threads on both sides (default: torch's default)")
    p.add_argument("--nc", type=int, default=80, help="classes of both models (default 80, COCO)")
    p.add_argument("--train", action=argparse.BooleanOptionalAction, default=True, help="time the training step")
    p.add_argument("--infer", action=argparse.BooleanOptionalAction, default=True, help="time inference")
    p.add_argument("--nchw", action="store_true", help="train gradpath NCHW (its Trainer uses channels-last on CPU)")
    p.add_argument("--peer-channels-last", action="store_true", help="give the package channels-last weights "
                   "for training (not what its train.py does)")
    p.add_argument("--peer-python", default="/tmp/y5-venv/bin/python", help="python of a venv with yolov5 7.0.x")
    p.add_argument("--allow-torch-mismatch", action="store_true")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON (benchmarks/run_all.py reads it)")
    args = p.parse_args()

    import torch

    from gradpath.data import build_dataset, collate_fn, load_data_config

    if args.threads:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()
    ds = build_dataset(load_data_config("shapes"), "train", imgsz=args.imgsz, augment=True)
    torch.manual_seed(0)
    batches = [collate_fn([ds[i * args.batch + k] for k in range(args.batch)]) for i in range(3)]
    batches = [{k: b[k] for k in ("img", "targets", "masks")} for b in batches]
    x_inf = torch.rand(1, 3, args.infer_imgsz, args.infer_imgsz, generator=torch.Generator().manual_seed(0))
    ours = Ours(batches, x_inf, args.nc, args.nchw)
    peer, info = None, {}
    tmp = tempfile.TemporaryDirectory()
    if Path(args.peer_python).exists():
        f = Path(tmp.name) / "io.pt"
        torch.save({"batches": batches, "x_infer": x_inf}, f)
        peer = Peer(args.peer_python, PEER, [str(f), str(args.threads), str(args.nc),
                                             str(int(args.peer_channels_last))])
        info = peer.ask("hello")
        check_torch(torch.__version__, info["torch"], args.allow_torch_mismatch)
    else:
        print(f"(no peer at {args.peer_python}: gradpath only)")
    print(f"{args.threads} threads (peer {info.get('threads', '-')}), {args.rounds} rounds x {args.iters} timed "
          f"iterations, nc {args.nc}, {info.get('lib', 'no peer')}")
    rows = []
    try:
        def params(size: str, pg: int | None = None, pp: int | None = None) -> None:
            pg = ours.params(size) if pg is None else pg
            pp = (peer.ask("params", size) if peer else None) if pp is None else pp
            verdict = "" if pp is None else ("  EQUAL" if pg == pp else f"  DIFFER by {pg - pp:+,}")
            print(f"yolov5{size}-seg parameters: gradpath {pg:,}, yolov5 package {pp if pp is None else f'{pp:,}'}"
                  f"{verdict}")
            rows.append(row("yolov5_params", f"yolov5{size}-seg parameters (unfused, nc {args.nc})", pg, pp,
                            "params", True))

        if not args.infer:
            params("l")
        if not args.train:
            params("s")
        if args.infer:
            n = ours.build_infer()
            sides = {"gradpath": ours.infer}
            params("l", n, peer.ask("build_infer")["params"] if peer else None)
            if peer:
                sides["yolov5"] = lambda n: peer.ask("infer", n)
            t = run_sides(sides, args.warmup, args.rounds, args.iters)
            ms = {k: 1000 * v for k, v in t.items()}
            line = f"inference yolov5l-seg b1@{args.infer_imgsz}: gradpath {ms['gradpath']:.1f} ms"
            if peer:
                line += f", yolov5 package {ms['yolov5']:.1f} ms, speed ratio {ms['yolov5'] / ms['gradpath']:.2f}x"
            print(line, flush=True)
            rows.append(row("yolov5_infer", f"yolov5l-seg inference b1@{args.infer_imgsz} (fused, eval)",
                            ms["gradpath"], ms.get("yolov5"), "ms", False))
        if args.train:
            n = ours.build_train()
            sides = {"gradpath": ours.train}
            built = peer.ask("build_train", args.imgsz) if peer else {}
            params("s", n, built.get("params"))
            if peer:
                hyp = built["hyp"]
                print(f"peer loss gains (hyp.scratch-low, scaled as in its train.py): {hyp}")
                sides["yolov5"] = lambda n: peer.ask("train", n)
            t = run_sides(sides, args.warmup, args.rounds, args.iters)
            ips = {k: args.batch / v for k, v in t.items()}
            line = f"train step yolov5s-seg b{args.batch}@{args.imgsz}: gradpath {ips['gradpath']:.2f} img/s"
            if peer:
                line += f", yolov5 package {ips['yolov5']:.2f} img/s, ratio {ips['gradpath'] / ips['yolov5']:.2f}x"
            print(line, flush=True)
            rows.append(row("yolov5_train", f"yolov5s-seg train step b{args.batch}@{args.imgsz} "
                            "(fwd + own seg loss + bwd + SGD)", ips["gradpath"], ips.get("yolov5"), "img/s", True))
    finally:
        if peer:
            peer.close()
        tmp.cleanup()
    write_result(args, "yolov5", info, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
