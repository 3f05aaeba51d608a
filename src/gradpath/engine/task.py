"""The protocol between the generic training loop and a task (segment, classify, ...).

The engine owns the run (folder, seeding, resume, checkpoints, logging, progress, DDP) and knows a task only
through this protocol; a task owns its data, targets, loss, metrics, plots and the metadata its checkpoints need,
and knows nothing of optimizers, EMA, DDP or checkpoint files. See docs/ARCHITECTURE.md.

Required members are in ``Task``; the optional hooks below it are looked up with ``getattr`` so a minimal task (a
test's toy task, say) need not define them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


@runtime_checkable
class Task(Protocol):
    name: str                        # run folders live in <project>/<name>/<run name>/
    loss_names: Sequence[str]        # the components of the ``items`` vector ``loss`` returns
    metric_names: Sequence[str]      # the keys ``evaluate`` returns (results.csv columns, fixed up front)
    collate_fn: Callable[[list], Any] | None

    def datasets(self) -> tuple[Dataset, Dataset | None]:
        """(train, val) datasets; val may be None (no evaluation)."""

    def setup(self, model: nn.Module, device: torch.device) -> None:
        """Called once with the bare (unwrapped) model on its device: check it fits the task, build the loss."""

    def preprocess(self, batch: Any, device: torch.device) -> Any:
        """Move a collated batch to ``device`` and build the inputs/targets the loss needs."""

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(scalar loss to back-propagate, detached per-component vector matching ``loss_names``)."""

    def evaluate(self, model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
        """Metrics of ``model`` (already in eval mode) on the val loader.

        Under DDP every rank calls this with its shard of the val set (a ``DistributedSampler``, no shuffle) and
        must return the metrics of the whole set, e.g. by ``all_gather_object`` of its predictions."""

    def fitness(self, metrics: Mapping[str, float]) -> float:
        """One number that decides ``best.pt`` (higher is better)."""


# Optional hooks (``getattr`` with these defaults):
#   options: dict                     plain constructor options; ``--resume`` rebuilds the task as type(task)(**options)
#   checkpoint_meta() -> dict         what inference needs later (class names, input size)
#   summary(metrics) -> str           the one line printed when training ends
#   plot(model, loader, device, save_dir) -> None   task figures drawn after the last epoch


def task_options(task: Task) -> dict[str, Any]:
    return dict(getattr(task, "options", None) or {})


def task_meta(task: Task) -> dict[str, Any]:
    fn = getattr(task, "checkpoint_meta", None)
    return dict(fn()) if callable(fn) else {}


def task_summary(task: Task, metrics: Mapping[str, float]) -> str:
    fn = getattr(task, "summary", None)
    if callable(fn):
        return str(fn(metrics))
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float)))


def task_plot(task: Task, model: nn.Module, loader: DataLoader, device: torch.device, save_dir: Path) -> None:
    fn = getattr(task, "plot", None)
    if callable(fn):
        fn(model, loader, device, save_dir)
