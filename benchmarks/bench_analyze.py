"""Time ``gradpath.analyze`` over growing depth and fit the exponent t ∝ depth^b (how the analyzer scales).

Nets: a ResNet of K two-conv residual blocks (torch module through fx; K up to 200, whose input has 2^200
paths), a stack of ELAN blocks (up to ~300 conv layers), and the largest registered model. The structure does
not depend on the input size, so small inputs are used (shape propagation is the only forward pass).
Run: ``.venv/bin/python benchmarks/bench_analyze.py``
"""
from __future__ import annotations

import math
import time

import torch
from torch import nn

import gradpath
from gradpath.models import create_model, list_models
from gradpath.nn import ELAN, ConvBNAct, Residual


def resnet(k: int, c: int = 8) -> nn.Module:
    return nn.Sequential(*[Residual(nn.Sequential(ConvBNAct(c, c, 1), ConvBNAct(c, c, 3)), c) for _ in range(k)])


def elan_stack(n: int, c: int = 8) -> nn.Module:
    return nn.Sequential(*[ELAN(c, c, entry_chs=c // 2, n_blocks=2, convs_per_block=2) for _ in range(n)])


def timed(model: nn.Module, x: torch.Tensor) -> tuple[float, float, object]:
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


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 8, 8, 8)
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


if __name__ == "__main__":
    main()
