"""torch.fx → :class:`OpGraph` (the default backend; definitions in docs/gradient-paths.md).

``symbolic_trace`` gives the op graph; one interpreted forward records each value's shape and
``requires_grad`` (an input that requires grad makes every differentiable route visible; ``detach`` and
integer results come out without grad, so their edges carry none). The walker here is generic: a module or
functional call that consumes a trainable parameter is a unit, a norm is merged into its producer or counted
(``norm``), and every other op gets its channel map from the rule registry in
:mod:`gradpath.analysis.channel_rules` (ops without a rule are mixing).
fx cannot see ``torch.no_grad`` blocks inside ``forward``: when a module's source mentions one we warn.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
import torch.fx as fx
from torch import nn
from torch.fx.proxy import TraceError

from gradpath.analysis.channel_rules import (LEAF_FUNCTIONS, declared_leaf_functions, default_axis, is_per_channel,
                                             mixing, op_name,
                                             rule_for_call, rule_for_module)
from gradpath.analysis.graph import INPUT, LOSS, PASS, UNIT, OpGraph, Rel
from gradpath.analysis.naming import CONVS, PER_CHANNEL_NORMS, is_norm, param_owner_map, unit_display_name
from gradpath.threads import one_cpu_thread

class _Meta:
    """Shape/grad record of one value: a tensor, a sequence of values, or something else."""

    __slots__ = ("shape", "rg", "seq")

    def __init__(self, shape=None, rg=False, seq=None):
        self.shape, self.rg, self.seq = shape, rg, seq

    @property
    def is_tensor(self) -> bool:
        return self.shape is not None

    @property
    def any_rg(self) -> bool:
        return self.rg or any(m.any_rg for m in (self.seq or ()))


def _meta(v: Any) -> _Meta:
    if isinstance(v, torch.Tensor):
        return _Meta(tuple(v.shape), bool(v.requires_grad))
    if isinstance(v, (tuple, list)):
        return _Meta(seq=[_meta(x) for x in v])
    if isinstance(v, dict):
        return _Meta(seq=[_meta(x) for x in v.values()])
    return _Meta()


class _Recorder(fx.Interpreter):
    """Runs the traced graph once and keeps each value's shape and ``requires_grad``."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.meta: dict[fx.Node, _Meta] = {}

    def run_node(self, n: fx.Node) -> Any:
        res = super().run_node(n)
        self.meta[n] = _meta(res)
        return res


class _WithLoss(nn.Module):
    def __init__(self, model: nn.Module, loss_fn: Callable) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, x):
        return self.loss_fn(self.model(x))


def _warn_no_grad(model: nn.Module, warnings: list[str]) -> None:
    seen = set()
    for m in model.modules():
        cls = type(m)
        if cls in seen or cls.__module__.startswith("torch."):
            continue
        seen.add(cls)
        try:
            src = inspect.getsource(cls.forward)
        except (OSError, TypeError):
            continue
        if "no_grad" in src or "inference_mode" in src:
            warnings.append(f"fx backend cannot see torch.no_grad inside {cls.__name__}.forward; "
                            "use backend='autograd' for exact stop-gradient")


class UntraceableError(Exception):
    """fx cannot trace the model's ``forward`` (dynamic Python); the autograd backend can still analyse it."""


# What symbolic tracing raises on dynamic Python in a user's forward: control flow on or iteration over a Proxy
# (TraceError), len() of a Proxy (RuntimeError), a Proxy where a Python number is needed (TypeError,
# ValueError), an attribute that only a real value has (AttributeError), an op fx does not support
# (NotImplementedError). Only the tracing call is guarded, so errors in the walker below keep their tracebacks.
_TRACE_FAILURES = (TraceError, TypeError, ValueError, RuntimeError, AttributeError, NotImplementedError)


def trace_fx(model: nn.Module, example: torch.Tensor, loss_fn: Callable | None = None, norm: str = "merge",
             ) -> OpGraph:
    """Translate ``model`` (plus ``loss_fn`` if given) into an op graph. Raises :class:`UntraceableError`
    when fx cannot trace it."""
    root: nn.Module = _WithLoss(model, loss_fn) if loss_fn is not None else model
    prefix = "model." if loss_fn is not None else ""
    # registered leaf functions (e.g. ones that branch on shapes) stay one call with a known channel map
    try:
        leaves = {**LEAF_FUNCTIONS, **declared_leaf_functions(root)}
        graph = fx.Tracer(autowrap_functions=tuple(leaves)).trace(root)
    except _TRACE_FAILURES as e:
        raise UntraceableError(f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}") from e
    gm = fx.GraphModule(root, graph)
    g = OpGraph()
    _warn_no_grad(model, g.warnings)
    was_training = model.training
    model.eval()  # BN statistics on a single small sample must not fail; the structure is the same
    try:
        rec = _Recorder(gm)
        x = example.detach().clone().requires_grad_(example.is_floating_point()).clone() \
            if example.is_floating_point() else example
        with torch.enable_grad(), one_cpu_thread(x.device):  # tiny tensors
            rec.run(x)
    finally:
        model.train(was_training)
    meta = rec.meta
    modules = dict(gm.named_modules())
    owners = param_owner_map(root)
    params_by_name = dict(root.named_parameters())
    b = FxGraphBuilder(g, meta, modules, owners, params_by_name, prefix, norm, root)
    for n in gm.graph.nodes:
        b.visit(n)
    return g


class FxGraphBuilder:
    """Walks the fx graph in forward order and emits :class:`OpGraph` vertices and edges. The channel rules
    receive it as ``ctx`` and use :meth:`shape`, :attr:`axis`, :meth:`ext`, :meth:`add`, :meth:`edge` and
    :meth:`per_channel_rels`."""

    def __init__(self, g, meta, modules, owners, params_by_name, prefix, norm, root) -> None:
        self.g: OpGraph = g
        self.meta: dict[fx.Node, _Meta] = meta
        self.modules = modules
        self.owners = owners
        self.params_by_name = params_by_name
        self.prefix = prefix
        self.norm = norm
        self.root = root
        self.idx: dict[fx.Node, int] = {}  # fx node -> op node (tensor-valued or sequence-valued)
        self.axis: dict[fx.Node, int | None] = {}
        self.split_dim: dict[fx.Node, int] = {}
        self.param_nodes: dict[fx.Node, str] = {}  # get_attr of a Parameter -> its qualified name

    # -- helpers --------------------------------------------------------------------------------------------
    def _name(self, s: str) -> str:
        return s[len(self.prefix):] if self.prefix and s.startswith(self.prefix) else s

    def shape(self, n: fx.Node):
        m = self.meta.get(n)
        return m.shape if m is not None else None

    def ext(self, n: fx.Node) -> int | None:
        shape, ax = self.shape(n), self.axis.get(n)
        if shape is None or ax is None or ax >= len(shape):
            return None
        return int(shape[ax])

    def _data_args(self, n: fx.Node) -> list[fx.Node]:
        out: list[fx.Node] = []
        def walk(a):
            if isinstance(a, fx.Node):
                if a in self.idx and a not in out:
                    out.append(a)
            elif isinstance(a, (list, tuple)):
                for x in a:
                    walk(x)
            elif isinstance(a, dict):
                for x in a.values():
                    walk(x)
            elif isinstance(a, slice):
                walk([a.start, a.stop, a.step])
        walk(n.args)
        walk(n.kwargs)
        return out

    def _param_args(self, n: fx.Node) -> list[str]:
        found = []
        for a in _flatten((n.args, n.kwargs)):
            if isinstance(a, fx.Node) and a in self.param_nodes:
                found.append(self.param_nodes[a])
        return found

    def grad(self, src: fx.Node, dst: fx.Node) -> bool:
        ms, md = self.meta.get(src), self.meta.get(dst)
        return bool(ms and md and ms.any_rg and md.any_rg)

    def add(self, kind: str, n: fx.Node, name: str, axis: int | None, **kw) -> int:
        self.axis[n] = axis
        shape = self.shape(n)
        ch = int(shape[axis]) if shape is not None and axis is not None and axis < len(shape) else None
        i = self.g.add_node(kind, name, ch, op=op_name(n.target) if n.op != "placeholder" else "input", **kw)
        self.idx[n] = i
        return i

    def edge(self, src: fx.Node, dst: fx.Node, rels: list[Rel] | None) -> None:
        self.g.add_edge(self.idx[src], self.idx[dst], rels, self.grad(src, dst))

    def per_channel_rels(self, src: fx.Node, dst: fx.Node) -> list[Rel] | None:
        """Broadcast-aware per-channel relation between an operand and the result."""
        ss, sd = self.shape(src), self.shape(dst)
        ad = self.axis.get(dst)
        if ss is None or sd is None or ad is None:
            return None
        k = ad - (len(sd) - len(ss))
        cd = int(sd[ad])
        if k < 0 or ss[k] == 1:
            return [Rel(0, cd, 0, 1, diag=False)] if cd != 1 else [Rel(0, 1, 0, 1)]
        if int(ss[k]) == cd and self.axis.get(src) == k:
            return [Rel(0, cd, 0, cd)]
        return None

    # -- visitor --------------------------------------------------------------------------------------------
    def visit(self, n: fx.Node) -> None:
        m = self.meta.get(n)
        if n.op == "placeholder":
            if m is not None and m.is_tensor:
                self.add(INPUT, n, "input" if n.name in ("x", "input") else n.name, default_axis(len(m.shape)))
            return
        if n.op == "get_attr":
            if n.target in self.params_by_name:  # buffers and constants: no gradient source, not a vertex
                self.param_nodes[n] = n.target
            return
        if n.op == "output":
            self._output(n)
            return
        if m is None:
            return
        if n.op == "call_module":
            self._module(n)
        else:
            self._function(n)

    def _output(self, n: fx.Node) -> None:
        leaves = [a for a in _flatten(n.args) if isinstance(a, fx.Node) and a in self.idx]
        lo = self.g.add_node(LOSS, "loss", None, op="loss")
        for a in leaves:
            ma = self.meta.get(a)
            self.g.add_edge(self.idx[a], lo, None, bool(ma and ma.any_rg))

    def _module(self, n: fx.Node) -> None:
        mod = self.modules[n.target]
        name = self._name(n.target)
        data = self._data_args(n)
        shape = self.shape(n)
        own_params = [p for p in mod.parameters()]
        if is_norm(mod) and own_params:
            self._norm(n, mod, name, data)
            return
        if own_params:  # a module with parameters is a unit (cost 1)
            axis = 1 if isinstance(mod, CONVS) and shape is not None and len(shape) >= 3 \
                else (default_axis(len(shape)) if shape is not None else None)
            trainable = any(p.requires_grad for p in own_params)
            self.add(UNIT, n, unit_display_name(self.root, n.target, self.prefix), axis,
                     params=sum(p.numel() for p in own_params), trainable=trainable,
                     param_names=tuple(self._name(f"{n.target}.{k}") for k, _ in mod.named_parameters()),
                     module=name)
            for a in data:
                self.edge(a, n, self._conv_rels(mod, a, n))
            return
        (rule_for_module(mod) or mixing)(self, n, data, name)

    def _conv_rels(self, mod: nn.Module, a: fx.Node, n: fx.Node) -> list[Rel] | None:
        groups = getattr(mod, "groups", 1)
        cin, cout = self.ext(a), self.ext(n)
        if groups <= 1 or cin is None or cout is None or cin % groups or cout % groups:
            return None
        if groups == cin == cout:
            return [Rel(0, cout, 0, cin)]
        gi, go = cin // groups, cout // groups
        return [Rel(j * go, (j + 1) * go, j * gi, (j + 1) * gi, diag=False) for j in range(groups)]

    def _norm(self, n: fx.Node, mod: nn.Module, name: str, data: list[fx.Node]) -> None:
        per_channel = isinstance(mod, PER_CHANNEL_NORMS)
        axis = self.axis.get(data[0]) if data else None
        nparams = sum(p.numel() for p in mod.parameters())
        src = data[0] if len(data) == 1 else None
        if self.norm == "count":
            self.add(UNIT, n, name, axis, params=nparams,
                     trainable=any(p.requires_grad for p in mod.parameters()),
                     param_names=tuple(f"{name}.{k}" for k, _ in mod.named_parameters()), module=name)
        else:
            mergeable = (self.norm == "merge" and src is not None and self.g.nodes[self.idx[src]].kind == UNIT
                         and len(src.users) == 1)
            self.add(PASS, n, name, axis)
            if mergeable:
                u = self.g.nodes[self.idx[src]]
                u.params += nparams
                u.param_names += tuple(f"{name}.{k}" for k, _ in mod.named_parameters())
                u.name = unit_display_name(self.root, src.target, self.prefix, merged_norm=n.target) \
                    if src.op == "call_module" else u.name
            elif self.norm == "merge":
                self.g.aux.append((name, nparams))
        for a in data:
            self.edge(a, n, self.per_channel_rels(a, n) if per_channel else None)

    def _function(self, n: fx.Node) -> None:
        data = self._data_args(n)
        params = self._param_args(n)
        if params:  # a functional op consuming a trainable Parameter is a unit
            self._functional_unit(n, data, params)
            return
        (rule_for_call(n.target) or mixing)(self, n, data, op_name(n.target))

    def _functional_unit(self, n: fx.Node, data: list[fx.Node], params: list[str]) -> None:
        """Named after the module that registers the first parameter; per-channel ops (``x * self.scale``)
        keep their operand's channels, others are mixing (``F.conv2d(x, self.weight)``)."""
        tn, shape = op_name(n.target), self.shape(n)
        per_channel = is_per_channel(n.target)
        owner = self.owners.get(params[0], params[0].rsplit(".", 1)[0])
        ps = [self.params_by_name[p] for p in params]
        axis = 1 if tn.startswith("conv") and shape is not None and len(shape) >= 3 else (
            self.axis.get(data[0]) if data and per_channel else
            (default_axis(len(shape)) if shape is not None else None))
        self.add(UNIT, n, self._name(owner) or tn, axis, params=sum(p.numel() for p in ps),
                 trainable=any(p.requires_grad for p in ps), param_names=tuple(self._name(p) for p in params),
                 module=self._name(owner))
        for a in data:
            self.edge(a, n, self.per_channel_rels(a, n) if per_channel else None)


def _flatten(x: Any) -> list[Any]:
    out: list[Any] = []
    if isinstance(x, (list, tuple)):
        for y in x:
            out.extend(_flatten(y))
    elif isinstance(x, dict):
        for y in x.values():
            out.extend(_flatten(y))
    elif isinstance(x, slice):
        out.extend(_flatten([x.start, x.stop, x.step]))
    else:
        out.append(x)
    return out
