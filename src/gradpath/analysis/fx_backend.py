"""torch.fx → :class:`OpGraph` (GRADIENT_PATHS.md §3, the default backend).

``symbolic_trace`` gives the op graph; one interpreted forward records each value's shape and
``requires_grad`` (an input that requires grad makes every differentiable route visible; ``detach`` and
integer results come out without grad, so their edges carry none, §2.4). Channel maps come from the
arguments of slice/getitem, split/chunk, narrow, cat and pad (§2.3); unknown ops are mixing.
fx cannot see ``torch.no_grad`` blocks inside ``forward``: when a module's source mentions one we warn.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
import torch.fx as fx
from torch import nn

from gradpath.analysis.graph import INPUT, LOSS, PASS, UNIT, OpGraph, Rel
from gradpath.analysis.naming import is_norm, param_owner_map, unit_display_name
from gradpath.threads import one_cpu_thread

_PER_CHANNEL_NAMES = {
    "add", "sub", "mul", "truediv", "div", "neg", "relu", "relu_", "relu6", "sigmoid", "tanh", "silu", "gelu",
    "leaky_relu", "hardswish", "hardsigmoid", "mish", "elu", "selu", "softplus", "exp", "log", "abs", "sqrt",
    "pow", "clamp", "clamp_", "clip", "contiguous", "clone", "float", "half", "double", "to", "type", "type_as",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool2d", "interpolate", "upsample", "dropout",
    "dropout2d", "sigmoid_", "add_", "mul_", "iadd", "imul", "isub", "sub_", "detach", "requires_grad_",
    "expand_as", "expand", "dropout1d", "floor", "round", "sign", "maximum", "minimum", "where", "masked_fill",
    "hardtanh", "rsub", "radd", "rmul", "square", "reciprocal", "sin", "cos", "zero_", "fill_",
}
_PER_CHANNEL_MODULES = (
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.LeakyReLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.GELU, nn.Hardswish,
    nn.Hardsigmoid, nn.ELU, nn.SELU, nn.Softplus, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.Dropout3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
    nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d, nn.ZeroPad2d, nn.ConstantPad2d, nn.Hardtanh,
)
_SPLIT_NAMES = {"split", "chunk", "tensor_split", "unbind", "split_with_sizes"}
_RESHAPE_NAMES = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "view_as", "reshape_as"}
_REDUCE_NAMES = {"mean", "sum", "amax", "amin", "max", "min", "prod", "logsumexp", "std", "var"}


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


def _tname(target: Any) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _default_axis(ndim: int) -> int | None:
    return None if ndim == 0 else (1 if ndim >= 3 else ndim - 1)


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
                            "use backend='autograd' for exact stop-gradient (GRADIENT_PATHS.md §2.4)")


def trace_fx(model: nn.Module, example: torch.Tensor, loss_fn: Callable | None = None, norm: str = "merge",
             ) -> OpGraph:
    """Translate ``model`` (plus ``loss_fn`` if given) into an op graph. Raises on untraceable models."""
    root: nn.Module = _WithLoss(model, loss_fn) if loss_fn is not None else model
    prefix = "model." if loss_fn is not None else ""
    # darknet's asymmetric shortcut branches on shapes: keep it as one call with a known channel map
    from gradpath.nn.residual import asymmetric_add

    graph = fx.Tracer(autowrap_functions=(asymmetric_add,)).trace(root)
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
    b = _Builder(g, meta, modules, owners, params_by_name, prefix, norm, root)
    for n in gm.graph.nodes:
        b.visit(n)
    return g


class _Builder:
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

    def _shape(self, n: fx.Node):
        m = self.meta.get(n)
        return m.shape if m is not None else None

    def _ext(self, n: fx.Node) -> int | None:
        shape, ax = self._shape(n), self.axis.get(n)
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

    def _grad(self, src: fx.Node, dst: fx.Node) -> bool:
        ms, md = self.meta.get(src), self.meta.get(dst)
        return bool(ms and md and ms.any_rg and md.any_rg)

    def _add(self, kind: str, n: fx.Node, name: str, axis: int | None, **kw) -> int:
        self.axis[n] = axis
        shape = self._shape(n)
        ch = int(shape[axis]) if shape is not None and axis is not None and axis < len(shape) else None
        i = self.g.add_node(kind, name, ch, op=_tname(n.target) if n.op != "placeholder" else "input", **kw)
        self.idx[n] = i
        return i

    def _edge(self, src: fx.Node, dst: fx.Node, rels: list[Rel] | None) -> None:
        self.g.add_edge(self.idx[src], self.idx[dst], rels, self._grad(src, dst))

    def _per_channel_rels(self, src: fx.Node, dst: fx.Node) -> list[Rel] | None:
        """Broadcast-aware per-channel relation between an operand and the result."""
        ss, sd = self._shape(src), self._shape(dst)
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
                self._add(INPUT, n, "input" if n.name in ("x", "input") else n.name, _default_axis(len(m.shape)))
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
        shape = self._shape(n)
        own_params = [p for p in mod.parameters()]
        if is_norm(mod) and own_params:
            self._norm(n, mod, name, data)
            return
        if own_params:
            axis = 1 if isinstance(mod, (nn.modules.conv._ConvNd,)) and shape is not None and len(shape) >= 3 \
                else (_default_axis(len(shape)) if shape is not None else None)
            trainable = any(p.requires_grad for p in own_params)
            self._add(UNIT, n, unit_display_name(self.root, n.target, self.prefix), axis,
                      params=sum(p.numel() for p in own_params), trainable=trainable,
                      param_names=tuple(self._name(f"{n.target}.{k}") for k, _ in mod.named_parameters()))
            for a in data:
                self._edge(a, n, self._conv_rels(mod, a, n))
            return
        if isinstance(mod, _PER_CHANNEL_MODULES):
            axis = self.axis.get(data[0]) if data else None
            self._add(PASS, n, name, axis)
            for a in data:
                self._edge(a, n, self._per_channel_rels(a, n))
            return
        if isinstance(mod, nn.Flatten):
            self._reshape(n, data)
            return
        self._mixing(n, data, name)

    def _conv_rels(self, mod: nn.Module, a: fx.Node, n: fx.Node) -> list[Rel] | None:
        groups = getattr(mod, "groups", 1)
        cin, cout = self._ext(a), self._ext(n)
        if groups <= 1 or cin is None or cout is None or cin % groups or cout % groups:
            return None
        if groups == cin == cout:
            return [Rel(0, cout, 0, cin)]
        gi, go = cin // groups, cout // groups
        return [Rel(j * go, (j + 1) * go, j * gi, (j + 1) * gi, diag=False) for j in range(groups)]

    def _norm(self, n: fx.Node, mod: nn.Module, name: str, data: list[fx.Node]) -> None:
        per_channel = isinstance(mod, (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm))
        axis = self.axis.get(data[0]) if data else None
        nparams = sum(p.numel() for p in mod.parameters())
        src = data[0] if len(data) == 1 else None
        if self.norm == "count":
            self._add(UNIT, n, name, axis, params=nparams,
                      trainable=any(p.requires_grad for p in mod.parameters()),
                      param_names=tuple(f"{name}.{k}" for k, _ in mod.named_parameters()))
        else:
            mergeable = (self.norm == "merge" and src is not None and self.g.nodes[self.idx[src]].kind == UNIT
                         and len(src.users) == 1)
            self._add(PASS, n, name, axis)
            if mergeable:
                u = self.g.nodes[self.idx[src]]
                u.params += nparams
                u.param_names += tuple(f"{name}.{k}" for k, _ in mod.named_parameters())
                u.name = unit_display_name(self.root, src.target, self.prefix, merged_norm=n.target) \
                    if src.op == "call_module" else u.name
            elif self.norm == "merge":
                self.g.aux.append((name, nparams))
        for a in data:
            self._edge(a, n, self._per_channel_rels(a, n) if per_channel else None)

    def _mixing(self, n: fx.Node, data: list[fx.Node], name: str) -> None:
        shape = self._shape(n)
        axis = _default_axis(len(shape)) if shape is not None else None
        self._add(PASS, n, name, axis)
        for a in data:
            self._edge(a, n, None)

    def _reshape(self, n: fx.Node, data: list[fx.Node]) -> None:
        """Keeps channel identity when the dims before the channel axis and its extent survive (flatten of
        (N, C, 1, 1), unsqueeze, view to (N, C)); otherwise mixing (§2.3)."""
        src = data[0] if data else None
        ss, sd = (self._shape(src) if src is not None else None), self._shape(n)
        ax = self.axis.get(src) if src is not None else None
        if ss is not None and sd is not None and ax is not None:
            pre = 1
            for d in ss[:ax]:
                pre *= int(d)
            post = 1
            for d in ss[ax + 1:]:
                post *= int(d)
            acc = 1
            for j, d in enumerate(sd):
                if acc == pre and int(d) == int(ss[ax]):
                    rest = 1
                    for e in sd[j + 1:]:
                        rest *= int(e)
                    if rest == post:
                        self._add(PASS, n, _tname(n.target), j)
                        self._edge(src, n, [Rel(0, int(d), 0, int(d))])
                        for a in data[1:]:
                            self._edge(a, n, None)
                        return
                acc *= int(d)
        self._mixing(n, data, _tname(n.target))

    def _function(self, n: fx.Node) -> None:
        tn = _tname(n.target)
        data = self._data_args(n)
        params = self._param_args(n)
        shape = self._shape(n)
        if params:  # a functional op consuming a trainable Parameter is a unit (§1)
            owner = self.owners.get(params[0], params[0].rsplit(".", 1)[0])
            ps = [self.params_by_name[p] for p in params]
            axis = 1 if tn.startswith("conv") and shape is not None and len(shape) >= 3 else (
                self.axis.get(data[0]) if data and tn in _PER_CHANNEL_NAMES else
                (_default_axis(len(shape)) if shape is not None else None))
            self._add(UNIT, n, self._name(owner) or tn, axis, params=sum(p.numel() for p in ps),
                      trainable=any(p.requires_grad for p in ps), param_names=tuple(self._name(p) for p in params))
            for a in data:
                rels = self._per_channel_rels(a, n) if tn in _PER_CHANNEL_NAMES else None
                self._edge(a, n, rels)
            return
        if tn == "getitem":
            self._getitem(n, data)
            return
        if tn == "asymmetric_add" and len(data) == 2:  # y + identity over the first min(Cx, Cy) channels
            ident, y = data
            self._add(PASS, n, tn, self.axis.get(y))
            m = min(self._ext(ident) or 0, self._ext(y) or 0)
            self._edge(ident, n, [Rel(0, m, 0, m)] if m else None)
            self._edge(y, n, self._per_channel_rels(y, n))
            return
        if tn in ("cat", "concat", "concatenate"):
            self._cat(n, data)
            return
        if tn in _SPLIT_NAMES:
            src = data[0]
            self._add(PASS, n, tn, self.axis.get(src))
            self.g.nodes[self.idx[n]].channels = self._ext(src)
            dim = n.kwargs.get("dim", n.args[2] if len(n.args) > 2 else 0)
            if tn == "unbind":
                dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else 0)
            ss = self._shape(src)
            if isinstance(dim, int) and ss is not None:
                self.split_dim[n] = dim % len(ss)
            c = self._ext(src)
            self.g.add_edge(self.idx[src], self.idx[n], [Rel(0, c, 0, c)] if c else None, self._grad(src, n))
            return
        if tn == "narrow":
            src = data[0]
            dim, start, length = n.args[1], n.args[2], n.args[3]
            ss = self._shape(src)
            if ss is not None and isinstance(dim, int) and dim % len(ss) == self.axis.get(src) \
                    and isinstance(start, int) and isinstance(length, int):
                self._add(PASS, n, tn, self.axis.get(src))
                self._edge(src, n, [Rel(0, length, start % int(ss[dim]), start % int(ss[dim]) + length)])
            else:
                self._per_channel(n, data, tn)
            return
        if tn == "pad":
            self._pad(n, data)
            return
        if tn in _RESHAPE_NAMES:
            self._reshape(n, data)
            return
        if tn in _REDUCE_NAMES and data:
            src = data[0]
            ss, ax = self._shape(src), self.axis.get(src)
            dims = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None)
            if ss is not None and ax is not None and dims is not None and shape is not None:
                dims = [dims] if isinstance(dims, int) else list(dims) if isinstance(dims, (list, tuple)) else None
                if dims is not None and all(isinstance(d, int) for d in dims):
                    dims = [d % len(ss) for d in dims]
                    if ax not in dims:
                        new_ax = ax if len(shape) == len(ss) else ax - sum(1 for d in dims if d < ax)
                        self._add(PASS, n, tn, new_ax)
                        self._edge(src, n, [Rel(0, int(ss[ax]), 0, int(ss[ax]))])
                        return
            self._mixing(n, data, tn)
            return
        if tn in ("permute", "transpose", "movedim"):
            self._permute(n, data, tn)
            return
        if tn in _PER_CHANNEL_NAMES:
            self._per_channel(n, data, tn)
            return
        self._mixing(n, data, tn)

    def _per_channel(self, n: fx.Node, data: list[fx.Node], tn: str) -> None:
        shape = self._shape(n)
        if shape is None:
            self._mixing(n, data, tn)
            return
        # the channel axis of the highest-rank operand, aligned from the right
        best = None
        for a in data:
            sa, ax = self._shape(a), self.axis.get(a)
            if sa is not None and ax is not None and (best is None or len(sa) > best[0]):
                best = (len(sa), ax + len(shape) - len(sa))
        axis = best[1] if best is not None and 0 <= best[1] < len(shape) else _default_axis(len(shape))
        self._add(PASS, n, tn, axis)
        for a in data:
            self._edge(a, n, self._per_channel_rels(a, n))

    def _permute(self, n: fx.Node, data: list[fx.Node], tn: str) -> None:
        src = data[0]
        ss, ax = self._shape(src), self.axis.get(src)
        args = [a for a in n.args[1:]]
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            args = list(args[0])
        if ss is None or ax is None or not all(isinstance(a, int) for a in args):
            self._mixing(n, data, tn)
            return
        nd = len(ss)
        if tn == "permute":
            perm = [a % nd for a in args]
        else:
            perm = list(range(nd))
            if len(args) == 2:
                i, j = args[0] % nd, args[1] % nd
                if tn == "transpose":
                    perm[i], perm[j] = perm[j], perm[i]
                else:
                    perm.insert(j, perm.pop(i))
        if sorted(perm) != list(range(nd)):
            self._mixing(n, data, tn)
            return
        self._add(PASS, n, tn, perm.index(ax))
        c = int(ss[ax])
        self._edge(src, n, [Rel(0, c, 0, c)])

    def _getitem(self, n: fx.Node, data: list[fx.Node]) -> None:
        src = n.args[0]
        idx = n.args[1]
        ms = self.meta.get(src) if isinstance(src, fx.Node) else None
        if not isinstance(src, fx.Node) or src not in self.idx or ms is None:
            self._mixing(n, data, "getitem")
            return
        if ms.seq is not None:  # element of a split / tuple output
            shape = self._shape(n)
            if src in self.split_dim and isinstance(idx, int) and shape is not None:
                dim = self.split_dim[src]
                sizes = [m.shape[dim] if m.shape is not None and len(m.shape) > dim else 0 for m in ms.seq]
                k = idx % len(sizes)
                off = sum(int(s) for s in sizes[:k])
                ax = self.axis.get(src)
                if dim == ax:
                    if len(shape) == len(self._shape(src) or ()):  # split / chunk
                        self._add(PASS, n, "getitem", ax)
                        self._edge(src, n, [Rel(0, int(sizes[k]), off, off + int(sizes[k]))])
                    else:  # unbind on the channel axis: one channel, no channel axis left
                        self._add(PASS, n, "getitem", None)
                        self._edge(src, n, [Rel(0, 1, off, off + 1, diag=False)])
                    return
                new_ax = ax if ax is None or len(shape) == len(self._shape(src)) or dim > ax else ax - 1
                self._add(PASS, n, "getitem", new_ax)
                c = self._ext(src)
                self._edge(src, n, [Rel(0, c, 0, c)] if c else None)
                return
            self._mixing(n, data, "getitem")
            return
        ss, ax = ms.shape, self.axis.get(src)
        shape = self._shape(n)
        if ss is None or shape is None:
            self._mixing(n, data, "getitem")
            return
        items = list(idx) if isinstance(idx, tuple) else [idx]
        if any(isinstance(i, fx.Node) for i in items) or any(
                isinstance(i, (list, torch.Tensor)) for i in items):
            if ax is not None and len(items) > ax:
                self.g.warnings.append(f"index tensor on the channel axis at {n.name}: treated as mixing (§6.5)")
            self._mixing(n, data, "getitem")
            return
        # walk the index: map input dims to output dims
        n_real = sum(1 for i in items if i is not None and i is not Ellipsis)
        in_d, out_d, new_ax, rel = 0, 0, None, None
        for it in items:
            if it is Ellipsis:
                skip = len(ss) - n_real
                if ax is not None and in_d <= ax < in_d + skip:
                    new_ax = out_d + (ax - in_d)
                in_d += skip
                out_d += skip
                continue
            if it is None:
                out_d += 1
                continue
            if in_d == ax:
                if isinstance(it, int):
                    c = it % int(ss[ax])
                    rel = Rel(0, 1, c, c + 1, diag=False)
                    new_ax = None
                elif isinstance(it, slice):
                    start, stop, step = it.indices(int(ss[ax]))
                    if step != 1:
                        self.g.warnings.append(f"non-unit-step channel slice at {n.name}: treated as mixing (§6.5)")
                        rel = "mix"
                    else:
                        rel = Rel(0, max(stop - start, 0), start, max(stop, start))
                    new_ax = out_d
            if isinstance(it, slice):
                out_d += 1
            in_d += 1
        if ax is not None and in_d <= ax:  # channel axis not indexed
            new_ax = out_d + (ax - in_d)
            rel = Rel(0, int(ss[ax]), 0, int(ss[ax]))
        self._add(PASS, n, "getitem", new_ax)
        if new_ax is None:
            self.g.nodes[self.idx[n]].channels = None
        self._edge(src, n, None if rel in (None, "mix") else [rel])

    def _cat(self, n: fx.Node, data: list[fx.Node]) -> None:
        tensors = n.args[0] if n.args else n.kwargs.get("tensors")
        dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else 0)
        shape = self._shape(n)
        tensors = [t for t in tensors if isinstance(t, fx.Node) and t in self.idx]
        if shape is None or not tensors:
            self._mixing(n, data, "cat")
            return
        dim = dim % len(shape)
        ax = self.axis.get(tensors[0])
        self._add(PASS, n, "cat", ax)
        off = 0
        for t in tensors:
            st = self._shape(t)
            size = int(st[dim]) if st is not None else 0
            if dim == ax:
                self._edge(t, n, [Rel(off, off + size, 0, size)])
            else:
                self._edge(t, n, self._per_channel_rels(t, n))
            off += size

    def _pad(self, n: fx.Node, data: list[fx.Node]) -> None:
        src = data[0]
        pad = n.args[1] if len(n.args) > 1 else n.kwargs.get("pad")
        ss, ax = self._shape(src), self.axis.get(src)
        if ss is None or ax is None or not isinstance(pad, (list, tuple)) or not all(
                isinstance(p, int) for p in pad):
            self._mixing(n, data, "pad")
            return
        j = len(ss) - 1 - ax
        front = pad[2 * j] if len(pad) > 2 * j else 0
        self._add(PASS, n, "pad", ax)
        cin, cout = int(ss[ax]), self._ext(n) or 0
        lo, hi = max(0, -front), min(cin, cout - front)
        self._edge(src, n, [Rel(lo + front, hi + front, lo, hi)] if hi > lo else [])
        for a in data[1:]:
            self._edge(a, n, None)


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
