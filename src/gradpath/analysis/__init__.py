"""Gradient-path analysis (Wang, Liao & Yeh 2022, §2). The definitions are in
docs/gradient-paths.md; § numbers in this package refer to that page.

``analyze(model, example_input)`` → :class:`Report` with, per unit and channel group, the shortest and longest
gradient path, the gradient timestamps, the number of paths of each length, the gradient sources and the
aggregated features; per network the longest gradient path and the longest shortest gradient path (LSGP).
The graph algorithms (``graph``, ``paths``) never import torch; backends: ``fx``, ``autograd``, or a
hand-built :class:`OpGraph`.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import torch

from gradpath.analysis.autograd_backend import trace_autograd
from gradpath.analysis.channel_rules import register_channel_rule, register_leaf_function
from gradpath.analysis.fx_backend import UntraceableError, trace_fx
from gradpath.analysis.graph import OpGraph
from gradpath.analysis.paths import PathGraph, build_paths
from gradpath.analysis.report import Report
from gradpath.errors import GradpathError, check_choice

BACKENDS = ("auto", "fx", "autograd", "manual")
NORMS = ("merge", "count", "ignore")


def _example(model: Any, imgsz: int | None) -> torch.Tensor:
    if imgsz is not None and imgsz < 1:
        raise GradpathError(f"imgsz must be a positive number of pixels, got {imgsz}")
    size = imgsz or getattr(model, "default_imgsz", None) or 224
    chans = getattr(model, "in_chans", None) or 3
    # on the model's device: a model built on the meta device is analysed from shapes alone
    first = next(iter(model.parameters()), None)
    return torch.randn(1, chans, size, size, device=first.device if first is not None else None)


def analyze(
    model: Any,
    example_input: Any = None,
    *,
    imgsz: int | None = None,
    loss_fn: Callable | None = None,
    backend: str = "auto",
    norm: str = "merge",
    channel_groups: bool = True,
    include_frozen: bool = False,
) -> Report:
    """Gradient paths of ``model`` from a loss fed by every output (or ``loss_fn(outputs)``).

    ``model`` may be an ``nn.Module`` or a hand-built :class:`OpGraph` (backend ``manual``).
    ``backend="auto"`` tries fx and falls back to autograd with a warning (§3). ``norm``: ``merge``
    (Conv-BN-act is one unit), ``count`` or ``ignore`` (§2.2). Frozen units cost 1 but are listed only with
    ``include_frozen`` (§2.5).
    """
    check_choice("backend", backend, BACKENDS)
    check_choice("norm", norm, NORMS)
    if isinstance(model, OpGraph):
        pg = build_paths(model, channel_groups)
        return Report(pg, "graph", "manual", norm, include_frozen, list(model.warnings))
    if backend == "manual":
        raise GradpathError("backend='manual' needs an OpGraph, not a module")
    x = example_input if example_input is not None else _example(model, imgsz)
    name = getattr(model, "gradpath_name", type(model).__name__)
    used = backend
    if backend in ("auto", "fx"):
        try:
            g = trace_fx(model, x, loss_fn, norm)
            used = "fx"
        except UntraceableError as e:  # e.g. data-dependent control flow in forward
            if backend == "fx":
                raise GradpathError(f"fx cannot trace {name}: {e} (try backend='autograd')") from e
            kind = str(e).split(":", 1)[0]
            msg = f"fx could not trace {name} ({kind}); fell back to the autograd backend"
            warnings.warn(msg, stacklevel=2)
            g = None
        if g is not None:
            rep = Report(build_paths(g, channel_groups), name, used, norm, include_frozen, list(g.warnings))
            return rep
        wmsg = [msg]
    else:
        wmsg = []
    g = trace_autograd(model, x, loss_fn, norm)
    if any(not p.requires_grad for p in model.parameters()):
        g.warnings.append("autograd backend cannot see frozen layers: they are treated as pass-through")
    return Report(build_paths(g, channel_groups), name, "autograd", norm, include_frozen, wmsg + list(g.warnings))


__all__ = ["analyze", "Report", "OpGraph", "PathGraph", "build_paths", "BACKENDS", "NORMS",
           "register_channel_rule", "register_leaf_function"]
