"""Hand-built op graphs of the Table 1 families (no torch): oracles for the path algorithms, whose values
are computed by hand in docs/gradient-paths.md §5. ``scaling.py`` builds the same families as real
``nn.Module`` nets; ``test_paths_manual.py`` checks that both give the same figures.

N 3×3 conv units of width ``w`` (growth ``k``); parameters counted as 9·in·out, as a bias-free 3×3 conv has.
"""
from __future__ import annotations

from gradpath.analysis.graph import OpGraph


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
