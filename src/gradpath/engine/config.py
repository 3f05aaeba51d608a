"""``TrainConfig``: how one run is optimised — the engine's half of a run's settings.

What is trained on (data, input size, augmentation and loss hyper-parameters) belongs to the task and travels in
its options; this dataclass holds only what the generic loop itself uses, so a new task never needs a new field
here. Defaults follow the YOLOv5 scratch recipe the paper trains its detectors with (Sec. 5.1 names YOLOv5 r6.2;
the segmentation code we follow first shipped in YOLOv5 v7.0).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from gradpath.engine.optim import OPTIMIZERS, SCHEDULES
from gradpath.errors import GradpathError


@dataclass
class TrainConfig:
    """Hyper-parameters of one run (written to ``args.yaml`` under ``train``)."""

    epochs: int = 100
    batch: int = 16                 # total over all DDP ranks
    optimizer: str = "sgd"          # sgd | adamw
    lr0: float = 0.01
    lrf: float = 0.01               # final lr = lr0 * lrf
    schedule: str = "linear"        # YOLOv5's default (its cosine is opt-in); one of gradpath.engine.optim.SCHEDULES
    momentum: float = 0.937         # SGD momentum / AdamW beta1
    weight_decay: float = 5e-4
    nbs: int = 64                   # nominal batch: gradients accumulate to it, weight decay scales with it; 0 = batch
    warmup_epochs: float = 3.0
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1
    ema: bool = True
    ema_decay: float = 0.9999
    ema_tau: float = 2000.0
    clip_grad: float = 10.0         # max gradient L2 norm; 0 disables
    amp: bool = True                # only ever active on CUDA
    device: str | None = None
    workers: int = 2
    seed: int = 0
    deterministic: bool = True
    channels_last: bool = True      # CPU: NHWC weights (oneDNN without reorders); --no-channels-last keeps NCHW
    val_interval: int = 1           # evaluate every N epochs (and always after the last)
    dist_timeout_min: float = 60.0  # DDP: how long a rank waits for a hung peer in a collective before failing
    plots: bool = True
    project: str = "runs"
    name: str = "exp"

    def validate(self) -> None:
        """One-line errors for values no run can use (the CLI passes them through unchecked)."""
        if self.nbs < 0:
            raise GradpathError(f"--nbs must be >= 0 (0: the batch itself), got {self.nbs}")
        for key in ("epochs", "batch", "val_interval"):
            if int(getattr(self, key)) < 1:
                raise GradpathError(f"--{key.replace('_', '-')} must be >= 1 (got {getattr(self, key)})")
        if self.workers < 0:
            raise GradpathError(f"--workers must be >= 0 (got {self.workers})")
        if not self.lr0 > 0:
            raise GradpathError(f"--lr0 must be > 0 (got {self.lr0})")
        if not 0 < self.lrf <= 1:
            raise GradpathError(f"--lrf must be in (0, 1] (got {self.lrf})")
        if self.optimizer not in OPTIMIZERS:
            raise GradpathError(f"--optimizer must be one of {', '.join(OPTIMIZERS)} (got {self.optimizer!r})")
        if self.schedule not in SCHEDULES:
            raise GradpathError(f"--schedule must be one of {', '.join(SCHEDULES)} (got {self.schedule!r})")
        if not self.dist_timeout_min > 0:
            raise GradpathError(f"--dist-timeout must be > 0 minutes (got {self.dist_timeout_min})")
        if not 0 <= self.ema_decay < 1:
            raise GradpathError(f"--ema-decay must be in [0, 1) (got {self.ema_decay})")
        if self.warmup_epochs < 0:
            raise GradpathError(f"--warmup-epochs must be >= 0 (got {self.warmup_epochs})")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Rebuild from a checkpoint's or ``args.yaml``'s plain dict; keys of other versions are dropped."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
