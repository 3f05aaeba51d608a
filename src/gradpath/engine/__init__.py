"""Training engine shared by every task: it owns the run — run folder, seeding, resume, checkpoints (one versioned
schema), logging, progress and DDP — and knows a task only through the ``Task`` protocol (docs/ARCHITECTURE.md)."""
from gradpath.engine.config import TrainConfig
from gradpath.engine.task import Task
from gradpath.engine.trainer import Trainer

__all__ = ["Task", "TrainConfig", "Trainer"]
