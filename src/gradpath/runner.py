"""Composition of a run, in one place: a task from the task registry + a model from the model registry + the engine.

``gradpath train`` (and its ``--recipe``s), ``--resume`` and the paper reproductions all start runs through these
two functions, so a run is put together the same way whoever starts it. The engine below knows no task and no
model name; the tasks know nothing of run folders or checkpoints.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from gradpath.engine import TrainConfig, Trainer
from gradpath.engine.checkpoint import load_checkpoint, model_config_dict
from gradpath.engine.run_dir import next_run_dir, run_dir_of
from gradpath.engine.utils import rng_state, seed_everything, set_rng_state
from gradpath.errors import GradpathError
from gradpath.models.registry import create_model, get_entry
from gradpath.tasks.registry import get_task

__all__ = ["train", "resume", "RESUME_CHANGES"]

#: What ``--resume`` may change: where and how the run executes, never what is trained.
RESUME_CHANGES = ("device", "workers", "dist_timeout_min")


def train(task: str, model: str, *, task_options: Mapping[str, Any] | None = None,
          model_overrides: Mapping[str, Any] | None = None, train_args: Mapping[str, Any] | None = None,
          exist_ok: bool = False, log: Callable[[str], None] | None = None, progress: bool = True) -> Trainer:
    """Train registered ``model`` on ``task`` and return the ``Trainer`` after ``fit()``.

    ``task_options`` go to the task's constructor (e.g. ``data``, ``imgsz``, ``hyp``); ``model_overrides`` to
    ``create_model`` (the task adds what it needs, such as the dataset's class count); ``train_args`` are
    ``TrainConfig`` fields. Every user mistake is a ``GradpathError`` raised before a run folder is made.
    """
    task_cls = get_task(task)
    get_entry(model)  # an unknown model fails here, with suggestions, before any data is touched
    cfg = TrainConfig(**dict(train_args or {}))
    cfg.validate()
    task_obj = task_cls(**dict(task_options or {}), progress=progress)
    overrides = {**dict(model_overrides or {}), **task_obj.model_overrides()}
    caller_rng = rng_state()  # the run seeds every generator; the caller gets its own back afterwards
    try:
        seed_everything(cfg.seed)  # the initial weights are part of the run: same seed, same network
        net = create_model(model, **overrides)
        save_dir = next_run_dir(cfg.project, task_obj.name, cfg.name, exist_ok)
        spec = {"name": model, "config": model_config_dict(net), "overrides": overrides}
        trainer = Trainer(net, task_obj, cfg, save_dir, model_spec=spec, log=log, progress=progress)
        trainer.fit()
    finally:
        set_rng_state(caller_rng)
    return trainer


def resume(checkpoint: str | Path, *, expect_model: str | None = None, log: Callable[[str], None] | None = None,
           progress: bool = True, **changes: Any) -> Trainer:
    """Continue an interrupted run from its checkpoint exactly where it stopped (same folder, same settings).

    ``changes`` may only touch where/how it runs (``RESUME_CHANGES``), never what is trained.
    """
    path = Path(checkpoint)
    ck = load_checkpoint(path)
    name = (ck.get("model") or {}).get("name")
    if expect_model is not None and name != expect_model:
        raise GradpathError(f"{path} is a checkpoint of model {name!r}, not {expect_model!r}")
    train_state = ck.get("train")
    if not isinstance(train_state, Mapping) or not train_state.get("optimizer") or not ck.get("task"):
        raise GradpathError(f"{path} is not a training checkpoint with optimizer state (it cannot be resumed)")
    epochs = int((train_state.get("args") or {}).get("epochs", ck.get("epochs") or 0))
    if int(ck.get("epoch", -1)) + 1 >= epochs:
        raise GradpathError(f"{path}: this run already finished all {epochs} epochs; nothing to resume "
                            "(start a new run, e.g. with another --name)")
    bad = sorted(k for k, v in changes.items() if v is not None and k not in RESUME_CHANGES)
    if bad:
        raise GradpathError(f"--resume continues the stored run; it cannot change {', '.join(bad)}")
    task_cls = get_task(ck["task"])
    cfg = TrainConfig.from_dict({**train_state["args"], **{k: v for k, v in changes.items() if v is not None}})
    task_obj = task_cls(**dict(ck.get("task_options") or {}), progress=progress)
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in (ck["model"].get("config") or {}).items()}
    net = create_model(name, **config)
    trainer = Trainer(net, task_obj, cfg, run_dir_of(path), model_spec=ck["model"], resume=ck, log=log,
                      progress=progress)
    caller_rng = rng_state()
    try:
        trainer.fit()
    finally:
        set_rng_state(caller_rng)
    return trainer
