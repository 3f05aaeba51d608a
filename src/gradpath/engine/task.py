"""The small protocol between the generic training loop and a task (classify, segment, ...).

DESIGN.md: ``engine`` is a generic loop that knows a Task (build targets, loss, evaluate), never the task's
internals; the task knows nothing of optimizers, EMA, DDP or checkpoints.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


@runtime_checkable
class Task(Protocol):
    name: str                        # run folders live in runs/<name>/<run name>/
    loss_names: Sequence[str]        # the components of the ``items`` vector ``loss`` returns
    metric_names: Sequence[str]      # the keys ``evaluate`` returns (results.csv columns, fixed up front)
    collate_fn: Callable[[list], Any] | None

    def datasets(self) -> tuple[Dataset, Dataset | None]:
        """(train, val) datasets; val may be None (no evaluation)."""

    def setup(self, model: nn.Module, device: torch.device) -> None:
        """Called once with the bare (unwrapped) model on its device, e.g. to build a loss that reads anchors."""

    def preprocess(self, batch: Any, device: torch.device) -> Any:
        """Move a collated batch to ``device`` and build the inputs/targets the loss needs."""

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(scalar loss to back-propagate, detached per-component vector matching ``loss_names``)."""

    def evaluate(self, model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
        """Metrics of ``model`` (already in eval mode) on the val loader.

        Under DDP every rank calls this with its shard of the val set (a ``DistributedSampler``, no shuffle) and
        must return the metrics of the whole set, e.g. by ``all_gather_object`` of its predictions."""

    def fitness(self, metrics: dict[str, float]) -> float:
        """One number that decides ``best.pt`` (higher is better)."""


def maybe_plot(task: Task, model: nn.Module, loader: DataLoader, device: torch.device, save_dir: Path) -> None:
    """Optional task hook ``plot_predictions(model, loader, device, save_dir)`` (e.g. a grid of val predictions)."""
    fn = getattr(task, "plot_predictions", None)
    if callable(fn):
        fn(model, loader, device, save_dir)
