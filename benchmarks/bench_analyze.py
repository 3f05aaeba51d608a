"""Time ``gradpath.analyze`` over growing depth and fit the exponent t ∝ depth^b (how the analyzer scales).

Nets: a ResNet of K two-conv residual blocks (torch module through fx; K up to 200, whose input has 2^200
paths), a stack of ELAN blocks (up to ~300 conv layers), and the largest registered model. The structure does
not depend on the input size, so small inputs are used (shape propagation is the only forward pass).
For the largest model it also times what a user waits for: ``gradpath analyze <model> --json`` in a fresh
process (wall time, imports included; stdout discarded) — the number benchmarks/run_all.py holds to its goal.
Run: ``.venv/bin/python benchmarks/bench_analyze.py [--largest-only] [--json OUT]``
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch and gradpath are imported where used, so that --help answers at once
    import torch
    from torch import nn


def resnet(k: int, c: int = 8) -> nn.Module:
    from torch import nn

    from gradpath.nn import ConvBNAct, Residual

    return nn.Sequential(*[Residual(nn.Sequential(ConvBNAct(c, c, 1), ConvBNAct(c, c, 3)), c) for _ in range(k)])


def elan_stack(n: int, c: int = 8) -> nn.Module:
    from torch import nn

    from gradpath.nn import ELAN

    return nn.Sequential(*[ELAN(c, c, entry_chs=c // 2, n_blocks=2, convs_per_block=2) for _ in range(n)])


def timed(model: nn.Module, x: torch.Tensor) -> tuple[float, float, object]:
    import gradpath

    t0 = time.perf_counter()
    rep = gradpath.analyze(model, x)
    t1 = time.perf_counter()
    rep.to_dict()
    return t1 - t0, time.perf_counter() - t1, rep


def slope(xs: list[float], ys: list[float]) -> float:
    lx, ly = [math.log(v) for v in xs], [math.log(v) for v in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def series(name: str, build, depths: list[int], x: torch.Tensor) -> None:
    units, ts = [], []
    print(f"\n{name}")
    print(f"{'depth':>6} {'units':>6} {'analyze s':>10} {'to_dict s':>10} {'LGP':>5} {'LSGP':>5}  input paths")
    for d in depths:
        ta, tj, rep = timed(build(d), x)
        net = rep.network()
        units.append(net["units"])
        ts.append(ta)
        p = int(net["input"]["paths"])
        ps = str(p) if p < 10 ** 12 else f"2^{math.log2(p):.1f}"
        print(f"{d:>6} {net['units']:>6} {ta:>10.3f} {tj:>10.3f} {net['lgp']:>5} {net['lsgp']:>5}  {ps}")
    print(f"fitted exponent (analyze time vs units): {slope(units, ts):.2f}")


def cli_wall(model: str) -> float:
    """Seconds of ``gradpath analyze MODEL --json`` in a fresh process (an argv list, no shell)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gradpath", "analyze", model, "--json"], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--largest-only", action="store_true", help="skip the depth series: only the largest model")
    p.add_argument("--cli-runs", type=int, default=3, help="fresh-process CLI runs; the median is reported")
    p.add_argument("--json", metavar="OUT", help="also write the largest model's timings as JSON (run_all.py)")
    args = p.parse_args()

    import torch
    from torch import nn

    from gradpath.models import create_model, list_models

    torch.manual_seed(0)
    x = torch.randn(1, 8, 8, 8)
    if not args.largest_only:
        series("ResNet (2-conv blocks, fx)", resnet, [25, 50, 100, 200], x)
        series("ELAN stack (7 convs per ELAN, fx)", elan_stack, [6, 12, 24, 43], x)
    names = list_models()
    with torch.device("meta"):  # counting layers needs no weights
        sizes = {n: sum(1 for m in create_model(n).modules() if isinstance(m, nn.Conv2d)) for n in names}
    big = max(sizes, key=sizes.get)
    ta, tj, rep = timed(create_model(big), torch.randn(1, 3, 64, 64))
    net = rep.network()
    print(f"\nlargest registered model: {big} ({sizes[big]} convs, {net['units']} units, backend {rep.backend}): "
          f"analyze {ta:.2f} s, to_dict {tj:.2f} s, LGP {net['lgp']}, LSGP {net['lsgp']}")
    walls = [cli_wall(big) for _ in range(max(1, args.cli_runs))]
    wall = statistics.median(walls)
    print(f"`gradpath analyze {big} --json` in a fresh process: {wall:.2f} s wall (median of "
          f"{', '.join(f'{w:.2f}' for w in walls)})")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "bench": "analyze", "torch": {"gradpath": torch.__version__, "peer": None}, "peer_lib": None,
            "threads": torch.get_num_threads(),
            "largest": {"model": big, "convs": sizes[big], "units": net["units"], "backend": rep.backend,
                        "analyze_s": ta, "to_dict_s": tj, "cli_wall_s": wall, "cli_walls_s": walls},
            "rows": [{"key": "analyze_wall", "work": f"`gradpath analyze {big} --json` wall, fresh process "
                      f"(largest zoo model, {sizes[big]} convs)", "gradpath": wall, "peer": None, "unit": "s",
                      "higher_is_better": False}]}, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
