"""The op graph every backend produces, and the manual builder tests use (docs/gradient-paths.md §2–§3).

Never imports torch: the fx and autograd backends translate a model into an :class:`OpGraph`; users and tests
can build one by hand. Vertex kinds (§2.1): ``input``, ``unit`` (cost 1), ``pass`` (cost 0) and one ``loss``.

Channel maps (§2.3) are lists of :class:`Rel` between the producer's output channels and the consumer's
output channels: ``diag`` relates channel ``in_lo + i`` to ``out_lo + i`` (per-channel ops, slice, cat, pad),
otherwise the two intervals are all-to-all (mixing). ``rels=None`` on an edge means fully mixing.
Nodes are appended in forward (topological) order; the algorithms rely on that.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

INPUT, UNIT, PASS, LOSS = "input", "unit", "pass", "loss"


@dataclass(frozen=True)
class Rel:
    """Producer channels [in_lo, in_hi) relate to consumer channels [out_lo, out_hi)."""

    out_lo: int
    out_hi: int
    in_lo: int
    in_hi: int
    diag: bool = True


@dataclass
class OpNode:
    idx: int
    kind: str
    name: str
    channels: int | None = None  # extent of the channel axis; None = no channel axis (one group)
    params: int = 0
    trainable: bool = True
    param_names: tuple[str, ...] = ()
    op: str = ""  # what produced it (for DOT export and debugging)
    call: int = 0  # 0 for the first call of a layer, 1 for the second, ...
    module: str = ""  # units: qualified name of the module owning the (first) parameter, as in named_modules()

    @property
    def extent(self) -> int:
        return self.channels if self.channels else 1


@dataclass
class OpEdge:
    src: int
    dst: int
    rels: list[Rel] | None = None  # None = mixing
    grad: bool = True  # False: detach / no_grad / non-differentiable route (kept for AF, §1)


@dataclass
class OpGraph:
    """Forward op graph. Build with :meth:`input`, :meth:`unit`, :meth:`op` and the channel helpers."""

    nodes: list[OpNode] = field(default_factory=list)
    edges: list[OpEdge] = field(default_factory=list)
    aux: list[tuple[str, int]] = field(default_factory=list)  # un-merged norms: (name, #params), §2.2
    warnings: list[str] = field(default_factory=list)
    _calls: dict[str, int] = field(default_factory=dict)

    # ---- low level -------------------------------------------------------------------------------------
    def add_node(self, kind: str, name: str, channels: int | None = None, **kw) -> int:
        if kind not in (INPUT, UNIT, PASS, LOSS):
            raise ValueError(f"unknown vertex kind {kind!r}")
        call = 0
        if kind == UNIT:
            call = self._calls.get(name, 0)
            self._calls[name] = call + 1
        n = OpNode(len(self.nodes), kind, name, channels, call=call, **kw)
        self.nodes.append(n)
        return n.idx

    def add_edge(self, src: int, dst: int, rels: Sequence[Rel] | None = None, grad: bool = True) -> None:
        if src >= dst:
            raise ValueError(f"edges must go forward in node order ({src} -> {dst})")
        self.edges.append(OpEdge(src, dst, list(rels) if rels is not None else None, grad))

    # ---- manual builder ----------------------------------------------------------------------------------
    def input(self, name: str = "input", channels: int | None = None) -> int:
        return self.add_node(INPUT, name, channels)

    def unit(self, name: str, inputs: int | Iterable[int], channels: int | None = None, params: int = 0,
             trainable: bool = True, diag: bool = False) -> int:
        """A parameterized layer (cost 1) reading ``inputs`` (mixing unless ``diag``, e.g. depthwise)."""
        u = self.add_node(UNIT, name, channels, params=params, trainable=trainable, op="unit", module=name)
        for i in _ids(inputs):
            self.add_edge(i, u, self._per_channel(i, u) if diag else None)
        return u

    def op(self, name: str, inputs: int | Iterable[int], channels: int | None = None, mixing: bool = False,
           grad: bool = True) -> int:
        """A pass-through op: per-channel over each input (add, act, pool) unless ``mixing``."""
        ins = _ids(inputs)
        if channels is None and ins:
            channels = self.nodes[ins[0]].channels
        p = self.add_node(PASS, name, channels, op=name)
        for i in ins:
            self.add_edge(i, p, None if mixing else self._per_channel(i, p), grad=grad)
        return p

    def add(self, *inputs: int) -> int:
        return self.op("add", list(inputs))

    def detach(self, x: int) -> int:
        return self.op("detach", x, grad=False)

    def slice(self, x: int, start: int, end: int) -> int:
        p = self.add_node(PASS, "slice", end - start, op="slice")
        self.add_edge(x, p, [Rel(0, end - start, start, end)])
        return p

    def cat(self, inputs: Sequence[int]) -> int:
        ext = [self.nodes[i].extent for i in inputs]
        p = self.add_node(PASS, "cat", sum(ext), op="cat")
        off = 0
        for i, c in zip(inputs, ext):
            self.add_edge(i, p, [Rel(off, off + c, 0, c)])
            off += c
        return p

    def pad(self, x: int, front: int, total: int) -> int:
        """Channel-axis zero pad to ``total`` channels, ``front`` of them before x (padded channels: no source)."""
        c = self.nodes[x].extent
        p = self.add_node(PASS, "pad", total, op="pad")
        self.add_edge(x, p, [Rel(front, front + c, 0, c)])
        return p

    def loss(self, inputs: int | Iterable[int]) -> int:
        lo = self.add_node(LOSS, "loss", None, op="loss")
        for i in _ids(inputs):
            self.add_edge(i, lo, None)
        return lo

    def _per_channel(self, src: int, dst: int) -> list[Rel] | None:
        a, b = self.nodes[src].channels, self.nodes[dst].channels
        if a is None or b is None:
            return None
        if a == b:
            return [Rel(0, b, 0, a)]
        if a == 1:  # broadcast operand reaches every channel
            return [Rel(0, b, 0, 1, diag=False)]
        return None

    @property
    def loss_node(self) -> int:
        for n in self.nodes:
            if n.kind == LOSS:
                return n.idx
        raise ValueError("the graph has no loss vertex")


def _ids(x: int | Iterable[int]) -> list[int]:
    return [x] if isinstance(x, int) else list(x)
