"""Checkpoints: one versioned schema, written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict (tensors, numbers, strings, lists, dicts), so loading it never unpickles code. It names
the task and the registered model with its resolved config, so ``val``/``predict``/``export`` rebuild exactly the
network that was trained and dispatch to the right task, and refuse weights of another model or task.

Schema (``SCHEMA_VERSION`` 2)::

    format        "gradpath-checkpoint"
    version       2
    task          task name, e.g. "segment" (the task registry rebuilds the task from it)
    task_options  the task's constructor options (data, imgsz, hyp, ...): ``--resume`` rebuilds the task from them
    meta          what inference needs from the task, e.g. {"names": [...], "imgsz": 640}
    model         {"name": registered name, "config": resolved config fields, "overrides": what the user set}
    weights       the state dict to evaluate and deploy (the EMA's when the run keeps one)
    epoch         last finished epoch, 0-based (-1: not trained by the engine)
    epochs        epochs the run was set up for
    metrics       last evaluation's metrics;   best_fitness: the fitness that chose best.pt
    date          when it was written
    train         only in checkpoints a run can resume from: {"args" (TrainConfig fields), "model" (raw weights),
                  "ema" (EMA bookkeeping: updates, decay, tau), "optimizer", "scheduler", "scaler", "rng",
                  and in a checkpoint written inside an epoch (a signal, a non-finite loss) "position": {"epoch"
                  (the epoch it stopped in; top-level ``epoch`` is the one before), "batches" (done in it),
                  "ranks" (per DDP rank: "rng" before the next batch, "mloss" the running loss mean), "grads"
                  (gradients accumulated since the last optimizer step, by parameter order, or None)}}

Checkpoints of gradpath 0.1 (two older layouts) are upgraded on load by ``upgrade_checkpoint``; a
``.safetensors`` file written by ``gradpath export`` loads as a checkpoint without training state.
"""
from __future__ import annotations

import dataclasses
import os
import pickle  # only for its exception class: checkpoints are read with weights_only=True
import tempfile
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradpath.deploy import read_safetensors
from gradpath.errors import GradpathError
from gradpath.models.registry import create_model

__all__ = ["SCHEMA_VERSION", "build_checkpoint", "save_checkpoint", "load_checkpoint", "make_checkpoint", "model_config_dict",
           "model_from_checkpoint", "upgrade_checkpoint", "plain"]

SCHEMA_VERSION = 2
FORMAT = "gradpath-checkpoint"


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: a temp file in the same folder, fsync, then ``os.replace``.

    A crash or a full disk mid-write leaves the previous checkpoint intact (``last.pt`` is rewritten every epoch;
    losing it to a half-written file would lose the run); the temp file is removed.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"save_checkpoint(path, state): state must be a mapping, got {type(state).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None and e.errno == 28:  # ENOSPC
            raise GradpathError(f"no space left on the device while writing {path}; the previous checkpoint "
                                "there is intact") from None
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint (``weights_only=True``) and return it in the current schema.

    A missing, unreadable or foreign file is a one-line ``GradpathError`` naming it.
    """
    path = Path(path)
    if path.is_dir():
        raise GradpathError(f"checkpoint {path} is a folder; pass a weights file such as {path / 'weights' / 'best.pt'}")
    if not path.is_file():
        raise GradpathError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise GradpathError(f"checkpoint {path} is empty (0 bytes)")
    if path.suffix == ".safetensors":  # weights + metadata written by `gradpath export --format safetensors`
        ck = read_safetensors(path)
        return build_checkpoint(task=ck["task"], task_options={}, meta=ck["meta"], model=ck["model"],
                                weights=ck["weights"])
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, OSError, ValueError, EOFError, KeyError, AttributeError, ImportError,
            pickle.UnpicklingError, zipfile.BadZipFile) as e:
        # torch.load reports truncated zips, foreign pickles and code-carrying pickles (refused by weights_only)
        # through these; all of them mean "this file is not a checkpoint we can read".
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GradpathError(f"checkpoint {path} cannot be read ({first[:200]})") from None
    if not isinstance(ck, dict):
        raise GradpathError(f"checkpoint {path} is not a gradpath checkpoint (found a {type(ck).__name__})")
    return upgrade_checkpoint(ck, path)


def upgrade_checkpoint(ck: Mapping[str, Any], path: str | os.PathLike = "checkpoint") -> dict[str, Any]:
    """Any layout gradpath has written → the current schema (a no-op for version 2)."""
    if ck.get("format") == FORMAT:
        v = ck.get("version")
        if v != SCHEMA_VERSION:
            raise GradpathError(f"{path}: checkpoint schema version {v} is not supported by this gradpath "
                                f"(it reads version {SCHEMA_VERSION}); upgrade gradpath")
        return dict(ck)
    if "run_info" in ck:  # 0.1 trainer layout
        info, targs = dict(ck.get("run_info") or {}), dict(ck.get("train_args") or {})
        ema = ck.get("ema") if isinstance(ck.get("ema"), Mapping) else None
        weights = (ema or {}).get("ema") or ck.get("model")
        task_options = {"data": info.get("data"), "imgsz": info.get("imgsz") or targs.get("imgsz"),
                        "hyp": info.get("hyp") or {}}
        train = None
        if "optimizer" in ck:
            train = {"args": targs, "model": ck.get("model"), "optimizer": ck.get("optimizer"),
                     "scheduler": ck.get("scheduler"), "scaler": ck.get("scaler"), "rng": ck.get("rng"),
                     "ema": {k: v for k, v in (ema or {}).items() if k != "ema"} or None}
        return build_checkpoint(task=info.get("task"), task_options=task_options,
                       meta={"names": info.get("names"), "imgsz": task_options["imgsz"]},
                       model={"name": info.get("model"), "config": info.get("model_config") or {},
                              "overrides": info.get("model_overrides") or {}},
                       weights=weights, epoch=ck.get("epoch", -1), epochs=ck.get("epochs", targs.get("epochs")),
                       metrics=ck.get("metrics") or {}, best_fitness=ck.get("best_fitness"), train=train,
                       date=ck.get("date"))
    if "model_name" in ck:  # 0.1 documented layout
        return build_checkpoint(task=ck.get("task", "segment"), task_options={"imgsz": ck.get("imgsz")},
                       meta={"names": ck.get("names"), "imgsz": ck.get("imgsz")},
                       model={"name": ck.get("model_name"), "config": ck.get("model_config") or {}, "overrides": {}},
                       weights=ck.get("model_state"), epoch=ck.get("epoch", -1))
    raise GradpathError(f"{path} holds no model name and weights: not a gradpath checkpoint")


def build_checkpoint(*, task: str | None, task_options: Mapping[str, Any] | None, meta: Mapping[str, Any] | None,
            model: Mapping[str, Any], weights: Mapping[str, Any] | None, epoch: int = -1, epochs: int | None = None,
            metrics: Mapping[str, Any] | None = None, best_fitness: float | None = None,
            train: Mapping[str, Any] | None = None, date: str | None = None) -> dict[str, Any]:
    """The schema's dict from its parts (see the module docstring); ``model`` is {"name", "config", "overrides"}."""
    ck: dict[str, Any] = {
        "format": FORMAT, "version": SCHEMA_VERSION, "task": task, "task_options": dict(task_options or {}),
        "meta": dict(meta or {}), "model": dict(model), "weights": weights, "epoch": int(epoch),
        "epochs": epochs, "metrics": dict(metrics or {}), "best_fitness": best_fitness,
        "date": date or time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if train is not None:
        ck["train"] = dict(train)
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


def make_checkpoint(model: nn.Module, *, task: str, weights: Mapping[str, torch.Tensor] | None = None,
                    task_options: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None,
                    overrides: Mapping[str, Any] | None = None, epoch: int = -1, epochs: int | None = None,
                    metrics: Mapping[str, Any] | None = None, best_fitness: float | None = None,
                    train: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A checkpoint of a registered model in the current schema; ``weights`` (e.g. the EMA's) replace the model's.

    The one constructor of the schema: the trainer and anything else that writes weights call it.
    """
    model = getattr(model, "module", model)
    return build_checkpoint(
        task=task, task_options=plain(task_options), meta=plain(meta),
        model=plain({"name": model.gradpath_name, "config": model_config_dict(model),
                     "overrides": dict(overrides or {})}),
        weights=dict(weights if weights is not None else model.state_dict()), epoch=epoch, epochs=epochs,
        metrics=plain(metrics), best_fitness=best_fitness, train=train)


def model_from_checkpoint(source: str | os.PathLike | Mapping[str, Any], expect_model: str | None = None,
                          expect_task: str | None = None,
                          map_location: str | torch.device = "cpu",
                          overrides: Mapping[str, Any] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint was saved from and load its weights; returns ``(model, checkpoint)``.

    ``expect_model`` / ``expect_task`` refuse a checkpoint of another model or task (e.g. a classifier given to a
    segmentation command). Weights that do not fit the rebuilt network are reported with the first mismatching
    tensors instead of a long PyTorch traceback. ``overrides`` replace fields of the stored config (they must leave
    the weights' shapes as they are, e.g. ``implicit``; a changed shape is reported like any misfit).
    """
    if isinstance(source, Mapping):
        ck, path = dict(source), "checkpoint"
    else:
        path = str(source)
        ck = load_checkpoint(source, map_location)
    name = (ck.get("model") or {}).get("name")
    cfg = dict((ck.get("model") or {}).get("config") or {})
    state = ck.get("weights")
    if not isinstance(name, str) or not isinstance(state, Mapping):
        raise GradpathError(f"{path} holds no model name and weights: not a gradpath checkpoint")
    if expect_task is not None and ck.get("task") != expect_task:
        raise GradpathError(f"{path} is a checkpoint of a {ck.get('task')!r} model ({name}), not of a "
                            f"{expect_task!r} model")
    if expect_model is not None and name != expect_model:
        raise GradpathError(f"{path} is a checkpoint of model {name!r}, not {expect_model!r}")
    # weights_only loading keeps tuples, but a YAML/JSON round trip may have turned them into lists
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
    cfg.update(overrides or {})
    try:
        model = create_model(name, **cfg)
    except GradpathError as e:
        raise GradpathError(f"{path}: cannot rebuild model {name!r} from its stored config: {e}") from None
    load_weights_checked(model, state, f"{path}: its weights do not fit model {name!r} with the stored config")
    return model, ck


def load_weights_checked(model: nn.Module, state: Mapping[str, Any], what: str) -> None:
    """``model.load_state_dict(state)``, with a one-line summary of missing/unexpected/misshapen tensors."""
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
        raise GradpathError(f"{what} — {'; '.join(parts)}. Was it saved from another model?")
    model.load_state_dict(state)


def plain(obj: Any) -> Any:
    """A ``weights_only``/YAML-safe copy: tuples → lists, Paths → str, dataclasses → dicts; tensors kept."""
    if isinstance(obj, torch.Tensor):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)
