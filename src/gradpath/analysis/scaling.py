"""Growth of parameters, LSGP and aggregated features with depth: Table 1 of the paper (from SparseNet).

Each family is a hand-built op graph of N 3×3 conv units (width ``w``, growth ``k``; parameters counted as
9·in·out) so that depths of hundreds run in well under a second:

- ``plain``: x → c1 → … → cN.
- ``resnet``: N residual blocks y = x + b(a(x)) (2 convs each, so the constant LSGP is 2, §6.8).
- ``densenet``: c_i reads cat[x0, c1..c_{i−1}], output cat of all (§5.5).
- ``sparsenet``: SparseNet's exponential fetch: c_i reads cat of the outputs at offsets 1, 2, 4, … back
  (x0 counts as position 0), and the output fetches the same way from position N+1 (Zhu et al.; Sparse
  DenseNet row). ``sparse-resnet`` sums the fetched outputs instead (Sparse ResNet row).

``fit_growth`` picks, among 1, log N, N, N log N and N², the class whose least-squares fit a·f(N)+b leaves
the smallest relative residual.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

from gradpath.analysis.graph import OpGraph

GROWTH = ("1", "log N", "N", "N log N", "N^2")
_F: dict[str, Callable[[float], float]] = {
    "1": lambda n: 1.0, "log N": math.log, "N": lambda n: n, "N log N": lambda n: n * math.log(n),
    "N^2": lambda n: n * n,
}


def plain_graph(n: int, w: int = 16) -> OpGraph:
    g = OpGraph()
    x = g.input("input", w)
    for i in range(1, n + 1):
        x = g.unit(f"c{i}", x, w, params=9 * w * w)
    g.loss(x)
    return g


def resnet_graph(n: int, w: int = 16, stop_gradient: str | None = None) -> OpGraph:
    """``stop_gradient``: None, ``identity`` (§5.3) or ``block`` (§5.4)."""
    g = OpGraph()
    x = g.input("input", w)
    for k in range(1, n + 1):
        xin = g.detach(x) if stop_gradient == "block" else x
        a = g.unit(f"a{k}", xin, w, params=9 * w * w)
        b = g.unit(f"b{k}", a, w, params=9 * w * w)
        x = g.add(g.detach(x) if stop_gradient == "identity" else x, b)
    g.loss(x)
    return g


def densenet_graph(n: int, k: int = 16) -> OpGraph:
    g = OpGraph()
    feats = [g.input("input", k)]
    for i in range(1, n + 1):
        inp = g.cat(feats)
        feats.append(g.unit(f"c{i}", inp, k, params=9 * k * g.nodes[inp].extent))
    g.loss(g.cat(feats))
    return g


def _fetch(pos: int) -> list[int]:
    """Positions read by position ``pos``: pos−1, pos−2, pos−4, … ≥ 0 (SparseNet's expFetch)."""
    out, d = [], 1
    while pos - d >= 0:
        out.append(pos - d)
        d *= 2
    return out


def sparsenet_graph(n: int, k: int = 16, aggregate: str = "cat") -> OpGraph:
    g = OpGraph()
    feats = [g.input("input", k)]
    for i in range(1, n + 1):
        srcs = [feats[j] for j in _fetch(i)]
        inp = g.cat(srcs) if aggregate == "cat" else (g.add(*srcs) if len(srcs) > 1 else srcs[0])
        feats.append(g.unit(f"c{i}", inp, k, params=9 * k * g.nodes[inp].extent))
    srcs = [feats[j] for j in _fetch(n + 1)]
    g.loss(g.cat(srcs) if aggregate == "cat" else g.add(*srcs) if len(srcs) > 1 else srcs[0])
    return g


FAMILIES: dict[str, Callable[[int], OpGraph]] = {
    "plain": plain_graph,
    "resnet": resnet_graph,
    "densenet": densenet_graph,
    "sparsenet": sparsenet_graph,
    "sparse-resnet": lambda n: sparsenet_graph(n, aggregate="add"),
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
    """Params, LSGP, LGP and aggregated features of ``builder(N)`` (an OpGraph or nn.Module) for each N,
    with the fitted growth class of each column (Table 1)."""
    from gradpath.analysis import analyze

    if isinstance(builder, str):
        builder = FAMILIES[builder]
    rows = []
    for n in ns:
        r = analyze(builder(n))
        net = r.network()
        rows.append({"N": n, "params": net["params"], "lsgp": net["lsgp"], "lgp": net["lgp"],
                     "max_af": net["max_aggregated_features"], "mean_af": net["mean_aggregated_features"]})
    growth = {c: fit_growth(ns, [row[c] for row in rows]) for c in ("params", "lsgp", "max_af")}
    return {"rows": rows, "growth": growth}
