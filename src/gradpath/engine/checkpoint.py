"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``, rebuilt from the registry.

A checkpoint is a plain dict (tensors, numbers, strings, lists, tuples, dicts) so it loads without unpickling
code. It names the registered model and its resolved config, so ``val``/``predict``/``export`` rebuild exactly
the network that was trained (``create_model(model_name, **model_config)``) and refuse weights of another one.

Keys (``make_checkpoint``): ``model_name``, ``model_config`` (the config dataclass as a dict), ``model_state``
(EMA weights when there are any — those are the ones evaluated and kept), ``names``, ``imgsz``, ``epoch`` and
whatever the caller adds (optimizer, scheduler, RNG … for ``--resume``). The trainer's layout
(``run_info = {"model", "model_overrides", "names", "imgsz"}``, ``model``, ``ema = {"ema": state}``) is read too.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradpath.engine.utils import unwrap
from gradpath.errors import GradpathError

__all__ = ["save_checkpoint", "load_checkpoint", "make_checkpoint", "model_config_dict", "model_from_checkpoint",
           "checkpoint_model_spec", "checkpoint_meta"]


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: a temp file in the same folder, fsync, then ``os.replace``.

    A crash mid-write leaves the previous checkpoint intact (``last.pt`` is rewritten every epoch; losing it to
    a half-written file would lose the run). ``save_checkpoint(state, path)`` is accepted as well.
    """
    if isinstance(path, Mapping) and not isinstance(state, Mapping):
        path, state = state, path  # type: ignore[assignment]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a missing, unreadable or foreign file is a ``GradpathError``."""
    path = Path(path)
    if path.is_dir():
        raise GradpathError(f"checkpoint {path} is a folder; pass a weights file such as {path / 'weights' / 'best.pt'}")
    if not path.is_file():
        raise GradpathError(f"checkpoint {path} does not exist")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read is the user's file, reported in one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GradpathError(f"checkpoint {path} cannot be read ({first[:200]})") from None
    if not isinstance(ck, dict):
        raise GradpathError(f"checkpoint {path} is not a gradpath checkpoint (found a {type(ck).__name__})")
    return ck


def model_config_dict(model: nn.Module) -> dict[str, Any]:
    """The registered config of ``model`` as a plain dict (fields → values), for ``create_model(name, **d)``."""
    cfg = getattr(model, "gradpath_config", None)
    if cfg is None or not dataclasses.is_dataclass(cfg):
        raise GradpathError(f"{type(model).__name__} was not built by create_model: it cannot be checkpointed "
                            "by name")
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v) or callable(v):
            raise GradpathError(f"config field {f.name!r} of {model.gradpath_name} is not a plain value")
        out[f.name] = v
    return out


def make_checkpoint(model: nn.Module, *, names: list[str] | None = None, imgsz: int | None = None,
                    epoch: int = -1, ema_state: Mapping[str, torch.Tensor] | None = None,
                    **extra: Any) -> dict[str, Any]:
    """A checkpoint dict in the contract layout (see the module docstring); ``ema_state`` replaces the weights."""
    model = unwrap(model)
    return {
        "model_name": model.gradpath_name,
        "model_config": model_config_dict(model),
        "model_state": dict(ema_state if ema_state is not None else model.state_dict()),
        "names": list(names) if names is not None else None,
        "imgsz": imgsz,
        "epoch": epoch,
        **extra,
    }


def checkpoint_model_spec(ck: Mapping[str, Any], path: str | os.PathLike = "checkpoint") -> tuple[str, dict, dict]:
    """``(model_name, config_overrides, state_dict)`` from either checkpoint layout."""
    if "model_name" in ck:
        name, cfg = ck["model_name"], dict(ck.get("model_config") or {})
        state = ck.get("model_state")
    else:
        info = ck.get("run_info") or {}
        name, cfg = info.get("model"), dict(info.get("model_config") or info.get("model_overrides") or {})
        ema = ck.get("ema")
        state = ema.get("ema") if isinstance(ema, Mapping) and ema.get("ema") else ck.get("model")
    if not isinstance(name, str) or not isinstance(state, Mapping):
        raise GradpathError(f"{path} holds no model name and weights: not a gradpath training checkpoint")
    # weights_only loading keeps tuples, but a YAML/JSON round trip may have turned them into lists
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
    return name, cfg, dict(state)


def model_from_checkpoint(path: str | os.PathLike, expect_model: str | None = None,
                          map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint was saved from and load its weights; returns ``(model, checkpoint)``.

    ``expect_model``: refuse a checkpoint of another registered model (e.g. ``--resume`` with another
    ``--model``). Weights that do not fit the rebuilt network (another architecture saved under this name, or a
    changed config) are reported with the first mismatching tensors instead of a long PyTorch traceback.
    """
    from gradpath.models.registry import create_model

    ck = load_checkpoint(path, map_location)
    name, cfg, state = checkpoint_model_spec(ck, path)
    if expect_model is not None and name != expect_model:
        raise GradpathError(f"{path} is a checkpoint of model {name!r}, not {expect_model!r}")
    try:
        model = create_model(name, **cfg)
    except GradpathError as e:
        raise GradpathError(f"{path}: cannot rebuild model {name!r} from its stored config: {e}") from None
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shape:
        parts = []
        if shape:
            parts.append(f"{len(shape)} shape mismatches (first: {shape[0]})")
        if missing:
            parts.append(f"{len(missing)} missing tensors (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (first: {unexpected[0]})")
        raise GradpathError(f"{path}: its weights do not fit model {name!r} with the stored config — "
                            f"{'; '.join(parts)}. Was it saved from another model?")
    model.load_state_dict(state)
    return model, ck


def checkpoint_meta(ck: Mapping[str, Any]) -> dict[str, Any]:
    """``names`` and ``imgsz`` of a checkpoint in either layout (None where it does not say)."""
    info = ck.get("run_info") or {}
    targs = ck.get("train_args") or {}
    names = ck.get("names") or info.get("names")
    imgsz = ck.get("imgsz") or info.get("imgsz") or targs.get("imgsz")
    return {"names": list(names) if names else None, "imgsz": int(imgsz) if imgsz else None}
