"""From an op graph to H and its path statistics (docs/gradient-paths.md §2.3 and §4). Never imports torch.

1. Channel refinement: cut points pushed through every per-channel map (diag :class:`Rel`) in both directions;
   each (node, interval) becomes a group.
2. Contraction: from every unit/input group, the first units or L reachable through pass-through groups along
   differentiable edges (bitsets as Python ints) — this is cons(u).
3. Coarsest partition: groups of the same call whose successor sets are equal are merged, to a fixed point.
4. DP in reverse topological order: T(u) = OR_v T(v) << cost(u) (bitmask), #paths exact, and the profile
   N(u, ·) packed into one big integer with W bits per length, so one shift-add per edge does the whole
   polynomial. Exact for any size (a 200-block ResNet's input has 2^200 paths); nothing is enumerated.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from gradpath.analysis.graph import INPUT, LOSS, PASS, UNIT, OpGraph, Rel


@dataclass
class Vertex:
    """A vertex of H: one call of a unit (or an input) restricted to a channel group, or the loss."""

    h: int
    node: int
    kind: str
    name: str
    intervals: list[tuple[int, int]]
    cost: int
    trainable: bool = True
    params: int = 0
    call: int = 0
    split: bool = False  # the layer has more than one group
    module: str = ""  # qualified name of the module owning the unit's parameters (OpNode.module)
    cons: list[int] = field(default_factory=list)
    T: int = 0  # bit k set <=> a path of length k exists
    paths: int = 0
    af: int = 0

    @property
    def id(self) -> str:
        s = self.name + (f"@{self.call}" if self.call else "")
        if self.split:
            s += "[" + ",".join(f"{a}:{b}" for a, b in self.intervals) + "]"
        return s

    @property
    def channels(self) -> tuple[int, int]:
        return self.intervals[0][0], self.intervals[-1][1]

    @property
    def sgp(self) -> int | None:
        return (self.T & -self.T).bit_length() - 1 if self.T else None

    @property
    def lgp(self) -> int | None:
        return self.T.bit_length() - 1 if self.T else None

    @property
    def timestamps(self) -> list[int]:
        return _bits(self.T)


@dataclass
class PathGraph:
    """H with its DP results. ``vertices`` are in forward order; the loss is last."""

    graph: OpGraph
    vertices: list[Vertex]
    width: int  # bits per length in the packed profiles
    packed: list[int]

    def profile(self, v: Vertex) -> dict[int, int]:
        p, mask, w = self.packed[v.h], (1 << self.width) - 1, self.width
        return {k: (p >> (k * w)) & mask for k in _bits(v.T)}

    def sources(self, v: Vertex) -> dict[int, list[int]]:
        """S(u, k) = {v in cons(u) : k - cost(u) in T(v)} (§1), as vertex indices."""
        out: dict[int, list[int]] = {}
        for c in v.cons:
            for k in _bits(self.vertices[c].T):
                out.setdefault(k + v.cost, []).append(c)
        return dict(sorted(out.items()))

    @property
    def loss(self) -> Vertex:
        return self.vertices[-1]

    def rounds(self) -> dict[int, list[int]]:
        """F_k of the paper's BFS: the vertices with a path of length k (§1)."""
        out: dict[int, list[int]] = {}
        for v in self.vertices:
            if v.kind == UNIT:
                for k in v.timestamps:
                    out.setdefault(k, []).append(v.h)
        return dict(sorted(out.items()))


def _bits(x: int) -> list[int]:
    out = []
    while x:
        low = x & -x
        out.append(low.bit_length() - 1)
        x ^= low
    return out


def _normalize(g: OpGraph, rels: list[Rel] | None, src: int, dst: int) -> list[Rel]:
    es, ed = g.nodes[src].extent, g.nodes[dst].extent
    if rels is None or g.nodes[src].channels is None or g.nodes[dst].channels is None:
        return [Rel(0, ed, 0, es, diag=False)]
    out = []
    for r in rels:
        ilo, ihi = max(0, r.in_lo), min(es, r.in_hi)
        olo, ohi = max(0, r.out_lo), min(ed, r.out_hi)
        if ilo >= ihi or olo >= ohi:
            continue
        diag = r.diag and (r.in_hi - r.in_lo) == (r.out_hi - r.out_lo) and (ilo, ihi, olo, ohi) == (
            r.in_lo, r.in_hi, r.out_lo, r.out_hi)
        out.append(Rel(olo, ohi, ilo, ihi, diag))
    return out


def _refine(g: OpGraph, edges: list[tuple[int, int, list[Rel], bool]]) -> list[list[int]]:
    cuts = [{0, n.extent} for n in g.nodes]
    diag = [(s, d, r) for s, d, rels, _ in edges for r in rels if r.diag]
    for s, d, r in diag:
        cuts[s].update((r.in_lo, r.in_hi))
        cuts[d].update((r.out_lo, r.out_hi))
    changed = True
    while changed:
        changed = False
        for seq in (diag, diag[::-1]):
            for s, d, r in seq:
                off = r.out_lo - r.in_lo
                fwd = {c + off for c in cuts[s] if r.in_lo < c < r.in_hi} - cuts[d]
                bwd = {c - off for c in cuts[d] if r.out_lo < c < r.out_hi} - cuts[s]
                if fwd:
                    cuts[d] |= fwd
                    changed = True
                if bwd:
                    cuts[s] |= bwd
                    changed = True
    return [sorted(c) for c in cuts]


def build_paths(g: OpGraph, channel_groups: bool = True) -> PathGraph:
    """Run §4 steps 1–5 on ``g``."""
    nodes = g.nodes
    lo_node = g.loss_node
    if lo_node != len(nodes) - 1:
        raise ValueError("the loss vertex must be the last node")
    edges = [(e.src, e.dst, _normalize(g, e.rels, e.src, e.dst), e.grad) for e in g.edges]
    if channel_groups:
        cuts = _refine(g, edges)
    else:
        cuts = [[0, n.extent] for n in nodes]
        edges = [(s, d, [Rel(0, nodes[d].extent, 0, nodes[s].extent, False)], gr) for s, d, _, gr in edges]

    # groups: gid = base[node] + j, in forward order
    base, G = [], 0
    for c in cuts:
        base.append(G)
        G += len(c) - 1
    gnode = [i for i, c in enumerate(cuts) for _ in range(len(c) - 1)]
    out_g: list[set[int]] = [set() for _ in range(G)]
    for s, d, rels, grad in edges:
        if not grad:
            continue
        cs, cd = cuts[s], cuts[d]
        for r in rels:
            js = range(bisect_right(cs, r.in_lo) - 1, bisect_left(cs, r.in_hi))
            if r.diag:
                off = r.out_lo - r.in_lo
                for j in js:
                    a, b = cs[j] + off, cs[j + 1] + off
                    for k in range(bisect_right(cd, a) - 1, bisect_left(cd, b)):
                        out_g[base[s] + j].add(base[d] + k)
            else:
                jd = range(bisect_right(cd, r.out_lo) - 1, bisect_left(cd, r.out_hi))
                for j in js:
                    out_g[base[s] + j].update(base[d] + k for k in jd)

    # H vertices (before merging): unit/input groups and the loss
    hidx = [-1] * G
    hv: list[tuple[int, int]] = []  # (gid, node)
    for gid in range(G):
        if nodes[gnode[gid]].kind != PASS:
            hidx[gid] = len(hv)
            hv.append((gid, gnode[gid]))
    # contraction through PASS groups (reverse topological order)
    reach = [0] * G
    for gid in range(G - 1, -1, -1):
        m = 0
        for d in out_g[gid]:
            m |= (1 << hidx[d]) if hidx[d] >= 0 else reach[d]
        reach[gid] = m
    cons0 = [_bits(reach[gid]) for gid, _ in hv]

    # coarsest partition: merge groups of one call with equal successor sets, to a fixed point
    canon = list(range(len(hv)))
    by_node: dict[int, list[int]] = {}
    for h, (_, n) in enumerate(hv):
        by_node.setdefault(n, []).append(h)
    multi = [hs for hs in by_node.values() if len(hs) > 1]
    changed = True
    while changed and multi:
        changed = False
        for hs in multi:
            live = [h for h in hs if canon[h] == h]
            if len(live) < 2:
                continue
            buckets: dict[frozenset, int] = {}
            for h in live:
                key = frozenset(canon[c] for c in cons0[h])
                rep = buckets.setdefault(key, h)
                if rep != h:
                    for x in hs:
                        if canon[x] == h:
                            canon[x] = rep
                    changed = True
    # final vertices, in forward order (node, first channel)
    members: dict[int, list[int]] = {}
    for h in range(len(hv)):
        members.setdefault(canon[h], []).append(h)
    reps = sorted(members, key=lambda r: (hv[r][1], hv[r][0]))
    newid = {r: i for i, r in enumerate(reps)}
    groups_per_node: dict[int, int] = {}
    for r in reps:
        groups_per_node[hv[r][1]] = groups_per_node.get(hv[r][1], 0) + 1
    verts: list[Vertex] = []
    for i, r in enumerate(reps):
        n = nodes[hv[r][1]]
        ivs = []
        for h in sorted(members[r]):
            j = hv[h][0] - base[n.idx]
            a, b = cuts[n.idx][j], cuts[n.idx][j + 1]
            if ivs and ivs[-1][1] == a:
                ivs[-1] = (ivs[-1][0], b)
            else:
                ivs.append((a, b))
        verts.append(Vertex(i, n.idx, n.kind, n.name, ivs, 1 if n.kind == UNIT else 0, n.trainable, n.params,
                            n.call, groups_per_node[n.idx] > 1, n.module,
                            cons=sorted({newid[canon[c]] for c in cons0[r]})))

    # DP (§4.3–4.5), loss first
    loss = verts[-1]
    if loss.kind != LOSS:
        raise ValueError("internal: loss vertex is not last")
    loss.T, loss.paths = 1, 1
    for v in reversed(verts[:-1]):
        t, p = 0, 0
        for c in v.cons:
            t |= verts[c].T
            p += verts[c].paths
        v.T, v.paths = t << v.cost, p
    width = max(v.paths for v in verts).bit_length() + 1
    packed = [0] * len(verts)
    packed[-1] = 1
    for v in reversed(verts[:-1]):
        acc = 0
        for c in v.cons:
            acc += packed[c]
        packed[v.h] = acc << (width * v.cost)

    # aggregated features (§1): producer units/inputs of each unit's input, over all edges (stop-gradient too)
    back = [0] * len(nodes)
    for s, d, _, _ in sorted(edges, key=lambda e: e[1]):
        back[d] |= (1 << s) if nodes[s].kind in (UNIT, INPUT) else back[s]
    for v in verts:
        if v.kind == UNIT:
            v.af = back[v.node].bit_count()
    return PathGraph(g, verts, width, packed)
