"""Model registry: a name → (builder, frozen config, paper reference numbers).

Architectures are data: each entry holds a frozen dataclass config; ``create_model`` applies
overrides with ``dataclasses.replace`` so an unknown field is an error that names the closest valid fields,
never a silent no-op, and a value of the wrong type (``spp="maybe"``) is an error that names the field's type.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from gradpath.errors import GradpathError, UnknownModelError, UnknownOptionError, suggest


@dataclass(frozen=True)
class PaperRef:
    """What the paper reports for a model, and the input size those numbers hold at — the one place the paper's
    FLOPs/params figures are typed (``gradpath reproduce flops``, ``gradpath models`` and the README table read
    them from here).

    ``gflops``/``params`` are in G and M as printed in the paper. ``reconstruction`` marks a model the paper does
    not define publicly: its figures are shown, never required. Otherwise both figures must be reproduced within
    ``tolerance``, except ``params`` when ``params_discrepancy`` is set (a known misprint of the paper; FLOPs are
    still required). ``params_rule`` names the counting rule: ``"fused"`` (YOLOv5 deploy count) or
    ``"weights"`` (darknet: conv/linear weights only), see docs/counting.md. ``note`` says how the build differs.
    """

    table: str
    imgsz: int
    gflops: float | None = None
    params: float | None = None
    params_rule: str = "fused"
    metric: dict[str, float] = field(default_factory=dict)
    reconstruction: bool = False
    params_discrepancy: bool = False
    tolerance: float = 0.005
    note: str = ""

    @property
    def check_gflops(self) -> bool:
        return not self.reconstruction and self.gflops is not None

    @property
    def check_params(self) -> bool:
        return not self.reconstruction and not self.params_discrepancy and self.params is not None

    @property
    def status(self) -> str:
        """``match`` (every figure required), ``FLOPs match`` (params a paper discrepancy), ``reconstruction``."""
        if self.reconstruction:
            return "reconstruction"
        return "FLOPs match; params: paper discrepancy" if self.params_discrepancy else "match"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[[Any], nn.Module]
    config: Any
    paper: PaperRef | None = None
    default_imgsz: int = 224
    task: str = "classify"
    description: str = ""

    def build(self, **overrides: Any) -> nn.Module:
        cfg = apply_overrides(self.config, overrides, self.name)
        model = self.builder(cfg)
        model.gradpath_name = self.name  # type: ignore[attr-defined]
        model.gradpath_config = cfg  # type: ignore[attr-defined]
        model.default_imgsz = self.default_imgsz  # type: ignore[attr-defined]
        return model


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    config: Any,
    *,
    paper: PaperRef | None = None,
    default_imgsz: int = 224,
    task: str = "classify",
    description: str = "",
) -> Callable[[Callable[[Any], nn.Module]], Callable[[Any], nn.Module]]:
    """Decorator: register ``builder(config) -> nn.Module`` under ``name`` with its default ``config``.

    ``config`` must be a frozen dataclass instance. Duplicate names are rejected at import time.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"register_model({name!r}): config must be a dataclass instance")

    def deco(builder: Callable[[Any], nn.Module]) -> Callable[[Any], nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        doc = description or (builder.__doc__ or "").strip().splitlines()[0:1]
        _REGISTRY[name] = ModelEntry(
            name, builder, config, paper, default_imgsz, task,
            doc if isinstance(doc, str) else (doc[0] if doc else ""),
        )
        return builder

    return deco


def _type_name(tp: Any) -> str:
    """How an annotation reads in an error message: ``bool``, ``float``, ``str or None``, ``list of 2 int``."""
    if tp is type(None):
        return "None"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type_name(args[0])}"
        return f"list of {len(args)} {' '.join(sorted({_type_name(a) for a in args}))}"
    return getattr(tp, "__name__", str(tp))


def _conform(value: Any, tp: Any) -> tuple[bool, Any]:
    """(whether ``value`` is of the annotated type, the value in the field's own form).

    Strict where a silent reading would change a model: a bool field takes only True/False (the CLI's yaml
    parsing turns ``true``/``false`` into bools upstream; ``"maybe"`` stays a string and is refused), an int is
    never a bool. Lenient where nothing can go wrong: an int is accepted for a float (and stored as float), a list
    for a tuple (stored as tuple, so configs compare equal). An annotation this does not know passes; the
    config's ``validate()`` still checks its domain."""
    if tp is Any:
        return True, value
    if tp is type(None):
        return value is None, value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, conformed = _conform(value, arg)
            if ok:
                return True, conformed
        return False, value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            return False, value
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        if len(args) != len(value):
            return False, value
        items = [_conform(v, a) for v, a in zip(value, args)]
        return all(ok for ok, _ in items), tuple(v for _, v in items)
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value


def apply_overrides(cfg: Any, overrides: dict[str, Any], model_name: str = "") -> Any:
    """``dataclasses.replace`` with a helpful error for unknown fields and for values of the wrong type."""
    if not overrides:
        return cfg
    names = [f.name for f in dataclasses.fields(cfg)]
    where = f" for model {model_name!r}" if model_name else ""
    for key in overrides:
        if key not in names:
            raise UnknownOptionError(
                f"unknown option {key!r}{where}.{suggest(key, names)} Valid options: {', '.join(names)}"
            )
    hints = typing.get_type_hints(type(cfg))
    conformed = {}
    for key, value in overrides.items():
        ok, conformed[key] = _conform(value, hints.get(key, Any))
        if not ok:
            raise GradpathError(f"option {key!r}{where} expects {_type_name(hints[key])}, "
                                f"got {value!r} ({type(value).__name__})")
    new = dataclasses.replace(cfg, **conformed)
    check = getattr(new, "validate", None)
    if callable(check):
        check()
    return new


def get_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}.{suggest(name, _REGISTRY)} Run `gradpath models` to list them."
        ) from None


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model; ``overrides`` replace fields of its config (e.g. ``strategy="csp"``)."""
    if not isinstance(name, str):
        raise GradpathError(f"model name must be a string, got {type(name).__name__}")
    return get_entry(name).build(**overrides)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def model_entries(pattern: str = "*") -> list[ModelEntry]:
    return [_REGISTRY[n] for n in list_models(pattern)]
