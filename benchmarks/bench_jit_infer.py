"""Does TorchScript freezing pay for CPU inference? gradpath's deploy form, eager vs traced + frozen + optimised.

Why: inference of yolov5l-seg is 1.13x the yolov5 package's, short of the 1.2x goal, and
``torch.jit.freeze`` + ``torch.jit.optimize_for_inference`` is the public route to oneDNN weight prepacking and
conv-add-activation fusion on the CPU. Both sides start from ``gradpath.deploy.deploy_model`` (BN folded,
channels-last weights); the traced side is built from it once (the time is printed), its outputs are checked
against eager, and single-image rounds alternate between the two so that load on the machine hits both alike.

    .venv/bin/python benchmarks/bench_jit_infer.py --model yolov5l-seg --imgsz 640 --rounds 4

Measured once, alone on the 2-core AMD EPYC (2026-12-02, 2 threads): eager median 1597 ms, frozen 1714 ms
(0.93x), 7.6 s to trace and freeze, largest output difference 6e-5. Not adopted.
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings


def _flat(out):
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flat(o)]
    return [out]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="yolov5l-seg")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--rounds", type=int, default=4, help="timed rounds, each one eager and one frozen image")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import torch

    from gradpath.deploy import deploy_model
    from gradpath.models import create_model

    torch.set_num_threads(args.threads)
    model = deploy_model(create_model(args.model).eval(), "cpu").eval()
    x = torch.rand(1, 3, args.imgsz, args.imgsz).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = _flat(model(x))
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracing warns about Python control flow the trace fixes
            traced = torch.jit.trace(model, x, strict=False, check_trace=False)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
        for _ in range(2):  # the first calls of a frozen module run its optimisation passes
            out = _flat(frozen(x))
        prep = time.perf_counter() - t0
        diff = max((a - b).abs().max().item() for a, b in zip(ref, out))
        times: dict[str, list[float]] = {"eager": [], "frozen": []}
        for _ in range(args.rounds):
            for name, fn in (("eager", model), ("frozen", frozen)):
                t0 = time.perf_counter()
                fn(x)
                times[name].append(time.perf_counter() - t0)
    eager, frozen_ms = (statistics.median(times[k]) * 1000 for k in ("eager", "frozen"))
    print(f"{args.model} b1@{args.imgsz}, {args.threads} threads: trace + freeze {prep:.1f} s, "
          f"largest output difference {diff:.1e}")
    print(f"eager {eager:.0f} ms   frozen {frozen_ms:.0f} ms   frozen speed {eager / frozen_ms:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
