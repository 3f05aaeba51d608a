"""Model registry: a name → (builder, frozen config, paper reference numbers).

Architectures are data: each entry holds a frozen dataclass config; ``create_model`` applies
overrides with ``dataclasses.replace`` so an unknown field is an error that names the closest valid fields,
never a silent no-op.
"""
from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from gradpath.errors import GradpathError, UnknownModelError, UnknownOptionError, suggest


@dataclass(frozen=True)
class PaperRef:
    """What the paper reports for a model, and the input size those numbers hold at.

    ``gflops``/``params`` are in G and M as printed in the paper. ``must_match`` says whether our build has to
    reproduce them (within ``tolerance``) or is a labelled reconstruction. ``params_rule`` names the counting
    rule: ``"fused"`` (YOLOv5 deploy count) or ``"weights"`` (darknet: conv/linear weights only).
    """

    table: str
    imgsz: int
    gflops: float | None = None
    params: float | None = None
    params_rule: str = "fused"
    metric: dict[str, float] = field(default_factory=dict)
    must_match: bool = True
    tolerance: float = 0.005
    note: str = ""


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


def apply_overrides(cfg: Any, overrides: dict[str, Any], model_name: str = "") -> Any:
    """``dataclasses.replace`` with a helpful error for unknown fields."""
    if not overrides:
        return cfg
    names = [f.name for f in dataclasses.fields(cfg)]
    for key in overrides:
        if key not in names:
            where = f" for model {model_name!r}" if model_name else ""
            raise UnknownOptionError(
                f"unknown option {key!r}{where}.{suggest(key, names)} Valid options: {', '.join(names)}"
            )
    new = dataclasses.replace(cfg, **overrides)
    check = getattr(new, "validate", None)
    if callable(check):
        check()
    return new


def _ensure_loaded() -> None:
    # Importing the model families fills the registry (registration happens at import time).
    import gradpath.models  # noqa: F401


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
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
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def model_entries(pattern: str = "*") -> list[ModelEntry]:
    return [_REGISTRY[n] for n in list_models(pattern)]
