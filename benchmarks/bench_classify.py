"""Classifier inference and training throughput (images/s): gradpath vs timm on the same five architectures.

Pairs (gradpath name -> timm name): csp-darknet53 -> cspdarknet53, csp-resnet50 -> cspresnet50, resnet50 ->
resnet50, darknet53 -> darknet53, csp-resnext50 -> cspresnext50 (Table 2's networks; timm's resnet50 has the
projection shortcuts gradpath's darknet-form resnet50 leaves out, so that pair is close, not identical — the
parameter counts are printed). No weights on either side: speed does not depend on them.

Why: gradpath claims its CSP classifiers are fast to use and to train; timm is what a user would otherwise take.
- inference: gradpath's deploy form (``gradpath.deploy.deploy_model``: BN folded, channels-last weights) vs timm as
  a user gets it (eval, NCHW) and timm with channels-last weights (its best CPU form); eval, no grad.
- training step: forward + cross-entropy + backward + SGD step (momentum 0.9) in train mode; gradpath in the form
  its Trainer uses on CPU (channels-last; ``--nchw`` to keep NCHW), timm NCHW and channels-last.
The ratio (gradpath img/s ÷ peer img/s, > 1 = gradpath faster) is taken against the FASTER timm form.

Both sides get the same input batch (``--batch`` × 3 × ``--imgsz``², labels), the same number of CPU threads and
the same torch release (checked, printed). timm is NOT a dependency: it runs in a worker process in its own venv
(``--peer-python``, e.g. ``python3.11 -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install torch==<ours>
torchvision==<ours> timm``) and rounds alternate between the sides (benchmarks/_peer.py); each side's number is
the median over all timed iterations. Without a peer only gradpath's numbers are printed. A benchmark, never a
timed test.

    .venv/bin/python benchmarks/bench_classify.py --peer-python /tmp/peers-venv/bin/python
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _peer import Peer, check_torch, interleave, median, row, times, write_result

PAIRS = {"csp-darknet53": "cspdarknet53", "csp-resnet50": "cspresnet50", "resnet50": "resnet50",
         "darknet53": "darknet53", "csp-resnext50": "cspresnext50"}

PEER = r'''
import torch
torch.set_num_threads(int(sys.argv[2]))
import timm
io = torch.load(sys.argv[1], weights_only=True)
x, y = io["x"], io["y"]
M = {}
def hello():
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "lib": "timm " + timm.__version__}
def build(name, train):
    M.clear()
    def make(cl):
        m = timm.create_model(name, pretrained=False)
        return m.to(memory_format=torch.channels_last) if cl else m
    M["infer"] = make(False).eval(); M["infer-cl"] = make(True).eval()
    if train:
        for k, cl in (("train", False), ("train-cl", True)):
            m = make(cl).train()
            M[k] = (m, torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9))
    return {"params": sum(p.numel() for p in M["infer"].parameters())}
def infer(form, n):
    m = M[form]
    with torch.inference_mode():
        return _times(lambda: m(x), n)
def train(form, n):
    m, opt = M[form]
    def step():
        out = m(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        torch.nn.functional.cross_entropy(out, y).backward()
        opt.step(); opt.zero_grad(set_to_none=True)
    return _times(step, n)
_serve({"hello": hello, "build": build, "infer": infer, "train": train})
'''


class Ours:
    """gradpath's side, with the same commands as the peer worker."""

    def __init__(self, x, y, nchw: bool) -> None:
        self.x, self.y, self.nchw, self.m = x, y, nchw, {}

    def build(self, name: str, train: bool) -> dict:
        import torch

        from gradpath.deploy import deploy_model
        from gradpath.models import create_model
        from gradpath.nn import to_channels_last

        self.m.clear()
        m = create_model(name).eval()
        n_params = sum(p.numel() for p in m.parameters())  # before folding BN
        self.m["infer"] = deploy_model(m, "cpu").eval()
        if train:
            m = create_model(name).train()
            if not self.nchw:
                to_channels_last(m)  # what gradpath's Trainer does on CPU
            self.m["train"] = (m, torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9))
        return {"params": n_params}

    def infer(self, n: int) -> list[float]:
        import torch

        m = self.m["infer"]
        with torch.inference_mode():
            return times(lambda: m(self.x), n)

    def train(self, n: int) -> list[float]:
        import torch

        m, opt = self.m["train"]

        def step() -> None:
            out = m(self.x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            torch.nn.functional.cross_entropy(out, self.y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return times(step, n)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--imgsz", type=int, default=224)
    p.add_argument("--iters", type=int, default=3, help="timed iterations per side per round")
    p.add_argument("--rounds", type=int, default=3,
                   help="alternating rounds (gradpath, timm NCHW, timm channels-last, gradpath, ...)")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations per form before the rounds")
    p.add_argument("--threads", type=int, default=None, help="CPU threads on both sides (default: torch's default)")
    p.add_argument("--train", action=argparse.BooleanOptionalAction, default=True,
                   help="also time a training step (default: yes)")
    p.add_argument("--pairs", default=",".join(PAIRS), help=f"comma list of gradpath names (default: all: "
                   f"{', '.join(PAIRS)})")
    p.add_argument("--nchw", action="store_true", help="train gradpath NCHW (its Trainer uses channels-last on CPU)")
    p.add_argument("--peer-python", default="/tmp/peers-venv/bin/python", help="python of a venv with timm")
    p.add_argument("--allow-torch-mismatch", action="store_true")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON (benchmarks/run_all.py reads it)")
    args = p.parse_args()
    pairs = [s.strip() for s in args.pairs.split(",") if s.strip()]
    bad = [s for s in pairs if s not in PAIRS]
    if bad:
        p.error(f"unknown pair(s) {bad}; choose from {', '.join(PAIRS)}")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.imgsz, args.imgsz, generator=g)
    y = torch.randint(0, 1000, (args.batch,), generator=g)
    ours = Ours(x, y, args.nchw)
    peer, info = None, {}
    tmp = tempfile.TemporaryDirectory()
    if Path(args.peer_python).exists():
        f = Path(tmp.name) / "io.pt"
        torch.save({"x": x, "y": y}, f)
        peer = Peer(args.peer_python, PEER, [str(f), str(args.threads)])
        info = peer.ask("hello")
        check_torch(torch.__version__, info["torch"], args.allow_torch_mismatch)
    else:
        print(f"(no peer at {args.peer_python}: gradpath only)")
    print(f"batch {args.batch}, imgsz {args.imgsz}, {args.threads} threads (peer {info.get('threads', '-')}), "
          f"{args.rounds} rounds x {args.iters} timed iterations, {info.get('lib', 'no peer')}; "
          f"gradpath train {'NCHW' if args.nchw else 'channels-last'}")
    rows, detail = [], []
    try:
        for name in pairs:
            tname = PAIRS[name]
            pg = ours.build(name, args.train)["params"]
            pp = peer.ask("build", tname, args.train)["params"] if peer else None
            kinds = [("infer", ours.infer, ("infer", "infer-cl"))]
            if args.train:
                kinds.append(("train", ours.train, ("train", "train-cl")))
            for kind, ours_fn, forms in kinds:
                sides = {"gradpath": ours_fn}
                if peer:
                    for form in forms:
                        label = "timm channels-last" if form.endswith("-cl") else "timm NCHW"
                        sides[label] = (lambda n, form=form, kind=kind: peer.ask(kind, form, n))
                if args.warmup:
                    for fn in sides.values():
                        fn(args.warmup)
                t = interleave(sides, args.rounds, args.iters)
                ips = {k: args.batch / median(v) for k, v in t.items()}
                best = max((k for k in ips if k != "gradpath"), key=ips.get, default=None)
                line = f"{kind:5s} {name:14s} gradpath {ips['gradpath']:7.1f} img/s"
                if best:
                    line += " | " + " | ".join(f"{k} {v:7.1f}" for k, v in ips.items() if k != "gradpath")
                    line += f" | ratio vs {best} {ips['gradpath'] / ips[best]:.2f}x"
                print(line, flush=True)
                what = ("inference, deploy form vs timm eval" if kind == "infer"
                        else "train step (fwd+CE+bwd+SGD)")
                vs = f" ({best} fastest)" if best else ""
                rows.append(row(f"classify_{kind}", f"{name} vs {tname}: {what}, b{args.batch}@{args.imgsz}{vs}",
                                ips["gradpath"], ips[best] if best else None, "img/s", True, pair=name,
                                peer_form=best, all_peer_forms={k: v for k, v in ips.items() if k != "gradpath"}))
            detail.append({"pair": name, "timm": tname, "params_gradpath": pg, "params_timm": pp})
            print(f"      {name:14s} params: gradpath {pg / 1e6:.2f} M, timm {tname} "
                  f"{f'{pp / 1e6:.2f} M' if pp else '-'}")
    finally:
        if peer:
            peer.close()
        tmp.cleanup()
    write_result(args, "classify", info, rows, params=detail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
