"""Backward graph → :class:`OpGraph` (the fallback for models fx cannot trace; docs/gradient-paths.md).

One real forward builds the autograd graph; walking ``loss.grad_fn.next_functions`` sees exactly the routes
gradient takes, so detach and ``no_grad`` are exact. A backward node is a unit when one of its inputs
leads only to ``AccumulateGrad`` of registered parameters (this also catches Linear's ``TBackward → weight``);
the module is found by parameter identity. Channel maps would need the version-specific ``_saved_*``
attributes of Cat/Split/Slice/ConstantPadNd, so this backend works at layer granularity and says so.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from gradpath.analysis.graph import INPUT, LOSS, PASS, UNIT, OpGraph
from gradpath.analysis.naming import is_norm, param_owner_map, unit_display_name
from gradpath.errors import GradpathError
from gradpath.threads import one_cpu_thread

_WEIGHT_VIEWS = ("TBackward", "ViewBackward", "ExpandBackward", "ReshapeAlias", "UnsqueezeBackward",
                 "SqueezeBackward", "PermuteBackward", "TransposeBackward", "CloneBackward", "ToCopyBackward",
                 "UnsafeViewBackward", "SelectBackward", "AsStridedBackward")
_CHANNEL_OPS = ("Cat", "Split", "Slice", "ConstantPadNd", "Narrow", "Unbind", "Chunk")


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _tensors(o)]
    return []


def default_loss(out: Any) -> torch.Tensor:
    """Every output tensor feeds the loss (weights ignored)."""
    ts = [t for t in _tensors(out) if t.requires_grad]
    if not ts:
        raise GradpathError("no model output requires grad: nothing to analyse")
    return sum(t.float().sum() for t in ts)


class _CreationOrder(TorchFunctionMode):
    """Numbers the backward node of every tensor a torch function returns, in the order the forward creates
    them: the forward execution order of the layers, which the report lists units in."""

    def __init__(self) -> None:
        super().__init__()
        self.order: dict[Any, int] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in _tensors(out):
            f = t.grad_fn
            if f is not None and f not in self.order:
                self.order[f] = len(self.order)
        return out


def _forward_order(order: dict[Any, int], nodes: list[Any], inputs_of: Callable[[Any], list[Any]]
                   ) -> dict[Any, tuple[int, int]]:
    """A sort key per backward node that follows creation order: recorded nodes by their number; a node made
    inside a function (not returned by it) right after the latest of its inputs, one step later per such
    level, so every node sorts after its inputs."""
    key: dict[Any, tuple[int, int]] = {}
    for f in nodes:  # iterative post-order: deep nets would exceed the recursion limit
        stack = [f]
        while stack:
            g = stack[-1]
            if g in key:
                stack.pop()
                continue
            todo = [h for h in inputs_of(g) if h not in key]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            if g in order:
                key[g] = (order[g], 0)
            else:
                ks = [key[h] for h in inputs_of(g)]
                key[g] = (max(k[0] for k in ks), max(k[1] for k in ks) + 1) if ks else (-1, 0)
    return key


def trace_autograd(model: nn.Module, example: torch.Tensor, loss_fn: Callable | None = None,
                   norm: str = "merge") -> OpGraph:
    g = OpGraph()
    was_training = model.training
    model.eval()
    try:
        x = example.detach().clone().requires_grad_(example.is_floating_point())
        with torch.enable_grad(), one_cpu_thread(x.device), _CreationOrder() as created:  # one small forward
            out = model(x)
            loss = loss_fn(out) if loss_fn is not None else default_loss(out)
    finally:
        model.train(was_training)
    if loss.grad_fn is None:
        raise GradpathError("the loss does not depend on any parameter or the input")
    pname = {id(p): n for n, p in model.named_parameters()}
    params = dict(model.named_parameters())
    owners = param_owner_map(model)

    # collect backward nodes
    seen: dict[Any, None] = {}
    stack = [loss.grad_fn]
    while stack:
        f = stack.pop()
        if f in seen:
            continue
        seen[f] = None
        stack.extend(nf for nf, _ in f.next_functions if nf is not None)

    # param-only analysis (memoized, iterative post-order)
    ponly: dict[Any, tuple[bool, frozenset]] = {}

    def leaf_info(f) -> tuple[bool, frozenset]:
        var = f.variable
        if var is x:
            return False, frozenset()
        n = pname.get(id(var))
        return True, frozenset([n]) if n else frozenset()

    order = list(seen)
    pending = [loss.grad_fn]
    while pending:
        f = pending[-1]
        if f in ponly:
            pending.pop()
            continue
        if hasattr(f, "variable"):
            ponly[f] = leaf_info(f)
            pending.pop()
            continue
        nxt = [nf for nf, _ in f.next_functions if nf is not None]
        todo = [nf for nf in nxt if nf not in ponly]
        if todo:
            pending.extend(todo)
            continue
        # parameter-side: a view/copy chain down to parameters only (Linear's TBackward -> weight). Any other
        # op of parameters only is a real layer whose data input was detached (Fig. 9b), not part of a weight.
        ok = bool(nxt) and type(f).__name__.startswith(_WEIGHT_VIEWS) and all(ponly[nf][0] for nf in nxt)
        ps = frozenset().union(*[ponly[nf][1] for nf in nxt]) if nxt else frozenset()
        ponly[f] = (ok, ps)
        pending.pop()

    data = [f for f in order if not ponly[f][0]]
    if any(type(f).__name__.startswith(_CHANNEL_OPS) for f in data):
        g.warnings.append("autograd backend resolves layers, not channel groups (split/cat/pad seen); "
                          "use backend='fx' for PRN/CSP channel groups")
    inp = [f for f in data if hasattr(f, "variable")]

    def data_inputs(f) -> list[Any]:
        return [nf for nf, _ in f.next_functions if nf is not None and not ponly[nf][0]]

    body = [f for f in data if not hasattr(f, "variable")]
    key = _forward_order(created.order, body, data_inputs)
    body.sort(key=key.__getitem__)
    ordered = inp + body
    idx: dict[Any, int] = {}
    users: dict[Any, int] = {}
    for f in body:
        for nf, _ in f.next_functions:
            if nf is not None and not ponly[nf][0]:
                users[nf] = users.get(nf, 0) + 1
    unit_params: dict[Any, set] = {}
    for f in ordered:
        if hasattr(f, "variable"):
            idx[f] = g.add_node(INPUT, "input", None, op="input")
            continue
        ps = set()
        for nf, _ in f.next_functions:
            if nf is not None and ponly[nf][0]:
                ps |= ponly[nf][1]
        dins = [nf for nf, _ in f.next_functions if nf is not None and not ponly[nf][0]]
        owner = owners.get(next(iter(sorted(ps))), "") if ps else ""
        mod = model.get_submodule(owner) if ps else None
        if ps and mod is not None and is_norm(mod) and norm != "count":
            src = dins[0] if len(dins) == 1 else None
            if norm == "merge" and src is not None and src in unit_params and users.get(src, 0) == 1:
                u = g.nodes[idx[src]]
                unit_params[src] |= ps
                u.params += sum(params[p].numel() for p in ps)
                u.param_names += tuple(sorted(ps))
                first_owner = owners[sorted(unit_params[src] - ps)[0]] if unit_params[src] - ps else owner
                u.name = unit_display_name(model, first_owner, merged_norm=owner)
            elif norm == "merge":
                g.aux.append((owner, sum(params[p].numel() for p in ps)))
            idx[f] = g.add_node(PASS, type(f).__name__, None, op=type(f).__name__)
        elif ps:
            idx[f] = g.add_node(UNIT, unit_display_name(model, owner), None, op=type(f).__name__,
                                params=sum(params[p].numel() for p in ps),
                                trainable=any(params[p].requires_grad for p in ps),
                                param_names=tuple(sorted(ps)), module=owner)
            unit_params[f] = set(ps)
        else:
            idx[f] = g.add_node(PASS, type(f).__name__, None, op=type(f).__name__)
        for nf in dict.fromkeys(dins):
            g.add_edge(idx[nf], idx[f], None)
    lo = g.add_node(LOSS, "loss", None, op="loss")
    g.add_edge(idx[loss.grad_fn], lo, None)
    return g
