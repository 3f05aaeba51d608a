"""Channel rules of the fx backend: how one op relates its operands' channels to its result's channels.

The fx walker (:mod:`gradpath.analysis.fx_backend`) knows nothing about individual ops. For every call it
looks up a rule here, the way ``torch.utils.flop_counter`` keys its counting rules by op:

1. by the call target itself (a function object, e.g. a leaf function registered by a user);
2. for tensor methods (``x.view(...)``) and for functions defined by torch or the ``operator`` module, by the
   op's name (``"cat"``, ``"add"``, ``"view"``), so that ``torch.cat``, ``Tensor.cat`` and ``torch.concat``
   share one rule; a user function is never matched by its name alone;
3. for ``call_module`` nodes without parameters, by the module's class (walking its MRO).

An op without a rule is *mixing*: every result channel depends on every operand channel. That is always safe
(it never invents a channel group; see docs/gradient-paths.md for the definitions of units, channel groups and
the maps).

A rule is ``rule(ctx, node, data, name)``: ``ctx`` is the walker (``shape``, ``axis``, ``ext``, ``add``,
``edge``, ``per_channel_rels``), ``data`` the operand nodes that carry values, ``name`` the vertex name. It must
add exactly one vertex for ``node`` with ``ctx.add`` and then its incoming edges with ``ctx.edge``.

Functions fx cannot trace into (for example because they branch on shapes) can be kept as one call with
:func:`register_leaf_function`, which takes the function and its channel rule, or by declaring the rule on the
function itself — ``fn.channel_rule = "prefix_add"`` (a name in ``NAMED_RULES``) — which the analyzer finds in
the modules that define the model's classes (:func:`declared_leaf_functions`). The analyzer itself knows no model
library's functions.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.fx as fx
from torch import nn

from gradpath.analysis.graph import PASS, Rel

if TYPE_CHECKING:  # the walker passes itself as ``ctx``; imported for type names only (it imports this module)
    from gradpath.analysis.fx_backend import FxGraphBuilder

ChannelRule = Callable[["FxGraphBuilder", fx.Node, list[fx.Node], str], None]

RULES: dict[Any, ChannelRule] = {}  # function object or op name -> rule
MODULE_RULES: dict[type, ChannelRule] = {}  # parameter-free module class -> rule
LEAF_FUNCTIONS: dict[Callable, ChannelRule] = {}  # kept as one fx call, not traced into
_NAMED_OP_MODULES = ("torch", "_operator", "operator")


def register_channel_rule(*ops: Any) -> Callable[[ChannelRule], ChannelRule]:
    """Decorator: ``rule`` handles each of ``ops`` (function objects, op names, or nn.Module classes)."""

    def deco(rule: ChannelRule) -> ChannelRule:
        for op in ops:
            if isinstance(op, type) and issubclass(op, nn.Module):
                MODULE_RULES[op] = rule
            else:
                RULES[op] = rule
        return rule

    return deco


def register_leaf_function(fn: Callable, rule: ChannelRule) -> None:
    """Keep ``fn`` as one call in the fx graph (fx does not trace into it) and relate its channels by ``rule``.

    For functions whose body fx cannot trace (data- or shape-dependent branches) but whose channel map is known,
    e.g. ``register_leaf_function(my_shortcut, prefix_add)``. The function must be called through a name
    that is global in the module of the calling ``forward`` (fx's ``autowrap_functions`` rule).
    """
    LEAF_FUNCTIONS[fn] = rule
    RULES[fn] = rule


def op_name(target: Any) -> str:
    """The name an fx call target is reported and looked up under."""
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def rule_for_call(target: Any) -> ChannelRule | None:
    """The rule of a ``call_function`` / ``call_method`` target (see the module docstring for the order)."""
    try:
        rule = RULES.get(target)
    except TypeError:  # an unhashable target
        rule = None
    if rule is not None:
        return rule
    if isinstance(target, str) or (getattr(target, "__module__", None) or "").split(".")[0] in _NAMED_OP_MODULES:
        return RULES.get(op_name(target))
    return None


def rule_for_module(mod: nn.Module) -> ChannelRule | None:
    for cls in type(mod).__mro__:
        rule = MODULE_RULES.get(cls)
        if rule is not None:
            return rule
    return None


def is_per_channel(target: Any) -> bool:
    """Whether a call relates channel c of each operand to channel c of the result (activations, pools,
    element-wise arithmetic), so that a functional op consuming a Parameter keeps the operand's channels."""
    return rule_for_call(target) is per_channel


def default_axis(ndim: int) -> int | None:
    """The channel axis of a value with no known producer axis: 1 for (N, C, ...), the last for (N, C)."""
    return None if ndim == 0 else (1 if ndim >= 3 else ndim - 1)


# ---- generic rules -----------------------------------------------------------------------------------------
def mixing(ctx: FxGraphBuilder, n: fx.Node, data: list[fx.Node], name: str) -> None:
    """Every result channel depends on every operand channel (the rule of any op without one)."""
    shape = ctx.shape(n)
    ctx.add(PASS, n, name, default_axis(len(shape)) if shape is not None else None)
    for a in data:
        ctx.edge(a, n, None)


@register_channel_rule(
    "add", "sub", "mul", "truediv", "div", "neg", "relu", "relu_", "relu6", "sigmoid", "tanh", "silu", "gelu",
    "leaky_relu", "hardswish", "hardsigmoid", "mish", "elu", "selu", "softplus", "exp", "log", "abs", "sqrt",
    "pow", "clamp", "clamp_", "clip", "contiguous", "clone", "float", "half", "double", "to", "type", "type_as",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool2d", "interpolate", "upsample", "dropout",
    "dropout2d", "sigmoid_", "add_", "mul_", "iadd", "imul", "isub", "sub_", "detach", "requires_grad_",
    "expand_as", "expand", "dropout1d", "floor", "round", "sign", "maximum", "minimum", "where", "masked_fill",
    "hardtanh", "rsub", "radd", "rmul", "square", "reciprocal", "sin", "cos", "zero_", "fill_",
)
def per_channel(ctx: FxGraphBuilder, n: fx.Node, data: list[fx.Node], name: str) -> None:
    """Channel c of each operand → channel c of the result, with broadcasting aligned from the right."""
    shape = ctx.shape(n)
    if shape is None:
        mixing(ctx, n, data, name)
        return
    # the channel axis of the highest-rank operand, aligned from the right
    best = None
    for a in data:
        sa, ax = ctx.shape(a), ctx.axis.get(a)
        if sa is not None and ax is not None and (best is None or len(sa) > best[0]):
            best = (len(sa), ax + len(shape) - len(sa))
    axis = best[1] if best is not None and 0 <= best[1] < len(shape) else default_axis(len(shape))
    ctx.add(PASS, n, name, axis)
    for a in data:
        ctx.edge(a, n, ctx.per_channel_rels(a, n))


@register_channel_rule(
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.LeakyReLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.GELU, nn.Hardswish,
    nn.Hardsigmoid, nn.ELU, nn.SELU, nn.Softplus, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.Dropout3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
    nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d, nn.ZeroPad2d, nn.ConstantPad2d, nn.Hardtanh,
)
def per_channel_module(ctx: FxGraphBuilder, n: fx.Node, data: list[fx.Node], name: str) -> None:
    """A parameter-free per-channel module keeps its input's channel axis."""
    ctx.add(PASS, n, name, ctx.axis.get(data[0]) if data else None)
    for a in data:
        ctx.edge(a, n, ctx.per_channel_rels(a, n))


@register_channel_rule("view", "reshape", "flatten", "squeeze", "unsqueeze", "view_as", "reshape_as", nn.Flatten)
def reshape(ctx: FxGraphBuilder, n: fx.Node, data: list[fx.Node], name: str) -> None:
    """Keeps channel identity when the dims before the channel axis and its extent survive (flatten of
    (N, C, 1, 1), unsqueeze, view to (N, C)); otherwise mixing."""
    name = op_name(n.target)  # a Flatten module is reported as its target too
    src = data[0] if data else None
    ss, sd = (ctx.shape(src) if src is not None else None), ctx.shape(n)
    ax = ctx.axis.get(src) if src is not None else None
    if ss is not None and sd is not None and ax is not None:
        pre = _prod(ss[:ax])
        post = _prod(ss[ax + 1:])
        acc = 1
        for j, d in enumerate(sd):
            if acc == pre and int(d) == int(ss[ax]) and _prod(sd[j + 1:]) == post:
                ctx.add(PASS, n, name, j)
                ctx.edge(src, n, [Rel(0, int(d), 0, int(d))])
                for a in data[1:]:
                    ctx.edge(a, n, None)
                return
            acc *= int(d)
    mixing(ctx, n, data, name)


def _prod(dims) -> int:
    out = 1
    for d in dims:
        out *= int(d)
    return out


@register_channel_rule("prod", "mean", "sum", "amax", "amin", "max", "min", "logsumexp", "std", "var")
def reduce(ctx: FxGraphBuilder, n: fx.Node, data: list[fx.Node], name: str) -> None:
    """A reduction over dims that exclude the channel axis keeps the channels; otherwise mixing."""
    if not data:
        mixing(ctx, n, data, name)
        return
    src, shape = data[0], ctx.shape(n)
    ss, ax = ctx.shape(src), ctx.axis.get(src)
    dims = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None)
    if ss is not None and ax is not None and dims is not None and shape is not None:
        dims = [dims] if isinstance(dims, int) else list(dims) if isinstance(dims, (list, tuple)) else None
        if dims is not None and all(isinstance(d, int) for d in dims):
            dims = [d % len(ss) for d in dims]
            if ax not in dims:
                new_ax = ax if len(shape) == len(ss) else ax - sum(1 for d in dims if d < ax)
                ctx.add(PASS, n, name, new_ax)
                ctx.edge(src, n, [Rel(0, int(ss[ax]), 0, int(ss[ax]))])
                return
    mixing(ctx, n, data, name)


@register_channel_rule("permute", "transpose", "movedim")
def permute(ctx: FxGraphBuilder, n: fx.Node, data: list[fx.Node], name: str) -> None:
    """The channel axis moves with the permutation; the channels themselves are unchanged."""
    src = data[0]
    ss, ax = ctx.shape(src), ctx.axis.get(src)
    args = list(n.args[1:])
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        args = list(args[0])
    if ss is None or ax is None or not all(isinstance(a, int) for a in args):
        mixing(ctx, n, data, name)
        return
    nd = len(ss)
    if name == "permute":
        perm = [a % nd for a in args]
    else:
        perm = list(range(nd))
        if len(args) == 2:
            i, j = args[0] % nd, args[1] % nd
            if name == "transpose":
                perm[i], perm[j] = perm[j], perm[i]
            else:
                perm.insert(j, perm.pop(i))
    if sorted(perm) != list(range(nd)):
        mixing(ctx, n, data, name)
        return
    ctx.add(PASS, n, name, perm.index(ax))
    c = int(ss[ax])
    ctx.edge(src, n, [Rel(0, c, 0, c)])


@register_channel_rule("cat", "concat", "concatenate")
def cat(ctx: FxGraphBuilder, n: fx.Node, data: list[fx.Node], name: str) -> None:
    """Operand k fills result channels [offset_k, offset_k + C_k) when joined on the channel axis."""
    tensors = n.args[0] if n.args else n.kwargs.get("tensors")
    dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else 0)
    shape = ctx.shape(n)
    tensors = [t for t in tensors if isinstance(t, fx.Node) and t in ctx.idx]
    if shape is None or not tensors:
        mixing(ctx, n, data, "cat")
        return
    dim = dim % len(shape)
    ax = ctx.axis.get(tensors[0])
    ctx.add(PASS, n, "cat", ax)
    off = 0
    for t in tensors:
        st = ctx.shape(t)
        size = int(st[dim]) if st is not None else 0
        if dim == ax:
            ctx.edge(t, n, [Rel(off, off + size, 0, size)])
        else:
            ctx.edge(t, n, ctx.per_channel_rels(t, n))
        off += size


@register_channel_rule("split", "chunk", "tensor_split", "unbind", "split_with_sizes")
def split(ctx: FxGraphBuilder, n: fx.Node, data: list[fx.Node], name: str) -> None:
    """A sequence-valued vertex carrying all source channels; ``getitem`` picks each piece's range."""
    src = data[0]
    ctx.add(PASS, n, name, ctx.axis.get(src))
    ctx.g.nodes[ctx.idx[n]].channels = ctx.ext(src)
    if name == "unbind":
        dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else 0)
    else:
        dim = n.kwargs.get("dim", n.args[2] if len(n.args) > 2 else 0)
    ss = ctx.shape(src)
    if isinstance(dim, int) and ss is not None:
        ctx.split_dim[n] = dim % len(ss)
    c = ctx.ext(src)
    ctx.edge(src, n, [Rel(0, c, 0, c)] if c else None)


@register_channel_rule("narrow")
def narrow(ctx: FxGraphBuilder, n: fx.Node, data: list[fx.Node], name: str) -> None:
    """``narrow(dim=channel axis, start, length)`` keeps channels [start, start + length)."""
    src = data[0]
    dim, start, length = n.args[1], n.args[2], n.args[3]
    ss = ctx.shape(src)
    if ss is not None and isinstance(dim, int) and dim % len(ss) == ctx.axis.get(src) \
            and isinstance(start, int) and isinstance(length, int):
        ctx.add(PASS, n, name, ctx.axis.get(src))
        ctx.edge(src, n, [Rel(0, length, start % int(ss[dim]), start % int(ss[dim]) + length)])
    else:
        per_channel(ctx, n, data, name)


@register_channel_rule("pad")
def pad(ctx: FxGraphBuilder, n: fx.Node, data: list[fx.Node], name: str) -> None:
    """Constant padding shifts the channels by the front pad of the channel axis; padded channels have no
    source."""
    src = data[0]
    widths = n.args[1] if len(n.args) > 1 else n.kwargs.get("pad")
    ss, ax = ctx.shape(src), ctx.axis.get(src)
    if ss is None or ax is None or not isinstance(widths, (list, tuple)) or not all(
            isinstance(p, int) for p in widths):
        mixing(ctx, n, data, "pad")
        return
    j = len(ss) - 1 - ax
    front = widths[2 * j] if len(widths) > 2 * j else 0
    ctx.add(PASS, n, "pad", ax)
    cin, cout = int(ss[ax]), ctx.ext(n) or 0
    lo, hi = max(0, -front), min(cin, cout - front)
    ctx.edge(src, n, [Rel(lo + front, hi + front, lo, hi)] if hi > lo else [])
    for a in data[1:]:
        ctx.edge(a, n, None)


def prefix_add(ctx: FxGraphBuilder, n: fx.Node, data: list[fx.Node], name: str) -> None:
    """``f(a, b)`` = ``b`` plus ``a`` on their common leading channels [0, min(C_a, C_b)); the result has ``b``'s
    channels (darknet's shortcut between layers of different width; PRN's asymmetric residual)."""
    if len(data) != 2:
        mixing(ctx, n, data, name)
        return
    a, b = data
    ctx.add(PASS, n, name, ctx.axis.get(b))
    m = min(ctx.ext(a) or 0, ctx.ext(b) or 0)
    ctx.edge(a, n, [Rel(0, m, 0, m)] if m else None)
    ctx.edge(b, n, ctx.per_channel_rels(b, n))


@register_channel_rule("getitem")
def getitem(ctx: FxGraphBuilder, n: fx.Node, data: list[fx.Node], name: str) -> None:
    """An element of a split/tuple, or an index/slice of a tensor: a slice on the channel axis keeps that
    channel range, an integer index keeps one channel and drops the axis; index tensors and strided channel
    slices are mixing (with a warning)."""
    src, idx = n.args[0], n.args[1]
    ms = ctx.meta.get(src) if isinstance(src, fx.Node) else None
    if not isinstance(src, fx.Node) or src not in ctx.idx or ms is None:
        mixing(ctx, n, data, "getitem")
        return
    if ms.seq is not None:
        _sequence_item(ctx, n, data, src, idx, ms)
        return
    ss, ax = ms.shape, ctx.axis.get(src)
    shape = ctx.shape(n)
    if ss is None or shape is None:
        mixing(ctx, n, data, "getitem")
        return
    items = list(idx) if isinstance(idx, tuple) else [idx]
    if any(isinstance(i, fx.Node) for i in items) or any(isinstance(i, (list, torch.Tensor)) for i in items):
        if ax is not None and len(items) > ax:
            ctx.g.warnings.append(f"index tensor on the channel axis at {n.name}: treated as mixing")
        mixing(ctx, n, data, "getitem")
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
                    ctx.g.warnings.append(f"non-unit-step channel slice at {n.name}: treated as mixing")
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
    ctx.add(PASS, n, "getitem", new_ax)
    if new_ax is None:
        ctx.g.nodes[ctx.idx[n]].channels = None
    ctx.edge(src, n, None if rel in (None, "mix") else [rel])


def _sequence_item(ctx: FxGraphBuilder, n: fx.Node, data: list[fx.Node], src: fx.Node, idx: Any, ms) -> None:
    """Element ``idx`` of a split/chunk/unbind result: its offset along the split dim."""
    shape = ctx.shape(n)
    if src not in ctx.split_dim or not isinstance(idx, int) or shape is None:
        mixing(ctx, n, data, "getitem")
        return
    dim = ctx.split_dim[src]
    sizes = [m.shape[dim] if m.shape is not None and len(m.shape) > dim else 0 for m in ms.seq]
    k = idx % len(sizes)
    off = sum(int(s) for s in sizes[:k])
    ax = ctx.axis.get(src)
    if dim == ax:
        if len(shape) == len(ctx.shape(src) or ()):  # split / chunk
            ctx.add(PASS, n, "getitem", ax)
            ctx.edge(src, n, [Rel(0, int(sizes[k]), off, off + int(sizes[k]))])
        else:  # unbind on the channel axis: one channel, no channel axis left
            ctx.add(PASS, n, "getitem", None)
            ctx.edge(src, n, [Rel(0, 1, off, off + 1, diag=False)])
        return
    new_ax = ax if ax is None or len(shape) == len(ctx.shape(src)) or dim > ax else ax - 1
    ctx.add(PASS, n, "getitem", new_ax)
    c = ctx.ext(src)
    ctx.edge(src, n, [Rel(0, c, 0, c)] if c else None)


# ---- leaf functions ------------------------------------------------------------------------------------------
# This library's own untraceable function, registered through the same public call a user would make: its body
# branches on shapes, so fx keeps it as one call whose channel map is the generic prefix_add rule.


#: rules a function may name in its ``channel_rule`` attribute
NAMED_RULES: dict[str, ChannelRule] = {"prefix_add": prefix_add}


def declared_leaf_functions(root: nn.Module) -> dict[Callable, ChannelRule]:
    """Functions with a ``channel_rule`` attribute naming a rule of ``NAMED_RULES``, found among the globals of
    the modules that define ``root``'s classes (where fx's ``autowrap_functions`` looks them up), registered as
    leaf functions on first sight."""
    found: dict[Callable, ChannelRule] = {}
    for mod_name in {type(m).__module__ for m in root.modules()}:
        module = sys.modules.get(mod_name)
        for value in vars(module).values() if module is not None else ():
            rule = NAMED_RULES.get(getattr(value, "channel_rule", None)) if callable(value) else None
            if rule is not None:
                found[value] = rule
                if value not in LEAF_FUNCTIONS:
                    register_leaf_function(value, rule)
    return found
