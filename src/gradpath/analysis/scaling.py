"""Growth of parameters, LSGP and aggregated features with depth: Table 1 of the paper (from SparseNet).

Each family is a real ``nn.Module`` of N bias-free 3×3 convs (each followed by a ReLU) of width ``w`` (growth
``k``), built for each depth N and analysed by :func:`gradpath.analysis.analyze` through the fx backend, like
any user model; params are the modules' own parameter counts (9·in·out per conv). Units are named ``c1..cN``
(``a_k``/``b_k`` for the residual blocks), so rows read like the paper's notation.

- ``plain``: x → c1 → … → cN.
- ``resnet``: N residual blocks y = x + b(a(x)) (2 convs each, so the constant LSGP is 2, §6.8).
- ``densenet``: c_i reads cat[x0, c1..c_{i−1}], the output is the cat of all (§5.5).
- ``sparsenet``: SparseNet's exponential fetch: c_i reads the cat of the outputs at offsets 1, 2, 4, … back
  (x0 counts as position 0), and the output fetches the same way from position N+1 (Zhu et al.; Sparse
  DenseNet row). ``sparse-resnet`` sums the fetched outputs instead (Sparse ResNet row).

The structure does not depend on the spatial size, so the nets run on a 4×4 input (``default_imgsz``).
``fit_growth`` picks, among 1, log N, N, N log N and N², the class whose least-squares fit a·f(N)+b leaves
the smallest relative residual.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

from gradpath.analysis import analyze

GROWTH = ("1", "log N", "N", "N log N", "N^2")
_F: dict[str, Callable[[float], float]] = {
    "1": lambda n: 1.0, "log N": math.log, "N": lambda n: n, "N log N": lambda n: n * math.log(n),
    "N^2": lambda n: n * n,
}
SPATIAL = 4


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.ReLU())


class _DepthNet(nn.Module):
    """Shared attributes: the analyzer builds its example input from ``in_chans`` and ``default_imgsz``."""

    default_imgsz = SPATIAL

    def __init__(self, in_chans: int) -> None:
        super().__init__()
        self.in_chans = in_chans


class PlainNet(_DepthNet):
    """x → c1 → … → cN."""

    def __init__(self, n: int, w: int = 16) -> None:
        super().__init__(w)
        self.n = n
        for i in range(1, n + 1):
            self.add_module(f"c{i}", _conv(w, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, self.n + 1):
            x = getattr(self, f"c{i}")(x)
        return x


class ResNet(_DepthNet):
    """N blocks y = x + b_k(a_k(x))."""

    def __init__(self, n: int, w: int = 16) -> None:
        super().__init__(w)
        self.n = n
        for k in range(1, n + 1):
            self.add_module(f"a{k}", _conv(w, w))
            self.add_module(f"b{k}", _conv(w, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for k in range(1, self.n + 1):
            x = x + getattr(self, f"b{k}")(getattr(self, f"a{k}")(x))
        return x


class DenseNet(_DepthNet):
    """c_i reads cat[x0, c1..c_{i−1}]; the output is cat[x0, c1..cN]."""

    def __init__(self, n: int, k: int = 16) -> None:
        super().__init__(k)
        self.n = n
        for i in range(1, n + 1):
            self.add_module(f"c{i}", _conv(k * i, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i in range(1, self.n + 1):
            feats.append(getattr(self, f"c{i}")(torch.cat(feats, 1)))
        return torch.cat(feats, 1)


def fetch(pos: int) -> list[int]:
    """Positions read by position ``pos``: pos−1, pos−2, pos−4, … ≥ 0 (SparseNet's expFetch)."""
    out, d = [], 1
    while pos - d >= 0:
        out.append(pos - d)
        d *= 2
    return out


class SparseNet(_DepthNet):
    """c_i reads the fetched positions (``fetch``), joined by cat (``aggregate="cat"``) or summed (``"add"``)."""

    def __init__(self, n: int, k: int = 16, aggregate: str = "cat") -> None:
        super().__init__(k)
        self.n, self.aggregate = n, aggregate
        for i in range(1, n + 1):
            cin = k * len(fetch(i)) if aggregate == "cat" else k
            self.add_module(f"c{i}", _conv(cin, k))

    def _join(self, xs: list[torch.Tensor]) -> torch.Tensor:
        if self.aggregate == "cat":
            return torch.cat(xs, 1)
        out = xs[0]
        for t in xs[1:]:
            out = out + t
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i in range(1, self.n + 1):
            feats.append(getattr(self, f"c{i}")(self._join([feats[j] for j in fetch(i)])))
        return self._join([feats[j] for j in fetch(self.n + 1)])


FAMILIES: dict[str, Callable[[int], nn.Module]] = {
    "plain": PlainNet,
    "resnet": ResNet,
    "densenet": DenseNet,
    "sparsenet": SparseNet,
    "sparse-resnet": lambda n: SparseNet(n, aggregate="add"),
}
TABLE1 = {  # the paper's Table 1: parameters, shortest gradient path, aggregated features
    "plain": ("N", "N", "1"), "resnet": ("N", "1", "N"), "densenet": ("N^2", "1", "N"),
    "sparsenet": ("N log N", "log N", "log N"), "sparse-resnet": ("N", "log N", "log N"),
}


def fit_growth(ns: Sequence[int], ys: Sequence[float]) -> str:
    """The growth class of ``ys`` over ``ns`` (see module docstring)."""
    if max(ys) == min(ys):
        return "1"
    best, best_r = "1", math.inf
    for name in GROWTH[1:]:
        f = [_F[name](n) for n in ns]
        mf, my = sum(f) / len(f), sum(ys) / len(ys)
        sxx = sum((a - mf) ** 2 for a in f)
        a = sum((fi - mf) * (y - my) for fi, y in zip(f, ys)) / sxx
        b = my - a * mf
        res = math.sqrt(sum((a * fi + b - y) ** 2 for fi, y in zip(f, ys)) / len(ys))
        rel = res / (max(ys) - min(ys))
        if a > 0 and rel < best_r - 1e-9:
            best, best_r = name, rel
    return best


def scaling(builder: Callable[[int], object] | str, ns: Sequence[int] = (4, 8, 16, 32, 64, 128)) -> dict:
    """Params, LSGP, LGP and aggregated features of ``builder(N)`` (an ``nn.Module``, or an ``OpGraph``) for
    each N, analysed by :func:`analyze`, with the fitted growth class of each column (Table 1)."""
    if isinstance(builder, str):
        builder = FAMILIES[builder]
    rows = []
    for n in ns:
        net = analyze(builder(n)).network()
        rows.append({"N": n, "params": net["params"], "lsgp": net["lsgp"], "lgp": net["lgp"],
                     "max_af": net["max_aggregated_features"], "mean_af": net["mean_aggregated_features"]})
    growth = {c: fit_growth(ns, [row[c] for row in rows]) for c in ("params", "lsgp", "max_af")}
    return {"rows": rows, "growth": growth}
