"""Training engine shared by every task: a generic loop (``Trainer``) over a small ``Task`` protocol, plus
optimizers/schedules, EMA, DDP helpers and checkpoints."""
from gradpath.engine.task import Task
from gradpath.engine.trainer import TrainConfig, Trainer

__all__ = ["Task", "TrainConfig", "Trainer"]
