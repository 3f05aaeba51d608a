"""The generic training loop shared by every task.

It implements the YOLOv5-r6.2 training recipe the paper uses for its COCO experiments (Sec. 5.1): SGD with
Nesterov momentum (or AdamW), linear warm-up of lr/momentum, a cosine or linear decay, gradient accumulation to
a nominal batch, EMA weights that are evaluated and kept, gradient-norm clipping, and mixed precision on CUDA
only. It knows a task only through ``gradpath.engine.task.Task``.

Run folder (``save_dir``): ``args.yaml``, ``results.csv`` (a row per epoch), ``results.png``,
``weights/last.pt`` and ``weights/best.pt`` (written atomically by ``gradpath.engine.checkpoint``), plus
whatever the task plots. A checkpoint holds everything ``--resume`` needs to continue *exactly*: model, EMA,
optimizer, scheduler, AMP scaler, RNG states and the epoch.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from gradpath.engine import ddp
from gradpath.engine.ema import ModelEMA
from gradpath.engine.optim import build_optimizer, build_scheduler, warmup_momentum
from gradpath.engine.task import Task, maybe_plot
from gradpath.engine.utils import epoch_seed, rng_state, seed_everything, seed_worker, select_device, set_rng_state, unwrap
from gradpath.errors import GradpathError
from gradpath.nn import to_channels_last


@dataclass
class TrainConfig:
    """Hyper-parameters of one run (written to ``args.yaml``). Defaults follow YOLOv5-r6.2's scratch recipe."""

    epochs: int = 100
    batch: int = 16                 # total over all DDP ranks
    imgsz: int = 640
    optimizer: str = "sgd"          # sgd | adamw
    lr0: float = 0.01
    lrf: float = 0.01               # final lr = lr0 * lrf
    schedule: str = "cosine"        # cosine | linear
    momentum: float = 0.937         # SGD momentum / AdamW beta1
    weight_decay: float = 5e-4
    nbs: int = 64                   # nominal batch: gradients accumulate to it; weight decay scales with it
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
    val_interval: int = 1           # evaluate every N epochs (and always after the last)
    plots: bool = True
    project: str = "runs"
    name: str = "exp"

    def validate(self) -> None:
        for key in ("epochs", "batch", "imgsz", "nbs", "val_interval"):
            if int(getattr(self, key)) < 1:
                raise GradpathError(f"--{key} must be >= 1 (got {getattr(self, key)})")
        if self.workers < 0:
            raise GradpathError(f"--workers must be >= 0 (got {self.workers})")
        if not self.lr0 > 0:
            raise GradpathError(f"--lr0 must be > 0 (got {self.lr0})")


def _default_log(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(msg, file=sys.stdout)


class Trainer:
    """``Trainer(model, task, cfg, save_dir).fit()`` → the final metrics dict.

    ``run_info`` is stored in checkpoints and ``args.yaml`` so ``--resume``, ``val`` and ``predict`` can rebuild
    the model and data (e.g. ``{"task": "segment", "model": "yolor-elan", "model_overrides": {...}, "data": ...}``).
    Under torchrun the process group is joined here; ``dist_info``/``init_method`` let tests spawn ranks directly.
    """

    def __init__(self, model: nn.Module, task: Task, cfg: TrainConfig, save_dir: str | Path,
                 run_info: dict[str, Any] | None = None, resume: dict[str, Any] | None = None,
                 log: Callable[[str], None] | None = None, dist_info: ddp.DistInfo | None = None,
                 init_method: str | None = None, progress: bool = True) -> None:
        cfg.validate()
        self.progress = progress
        self.cfg = cfg
        self.task = task
        self.run_info = dict(run_info or {})
        self.save_dir = Path(save_dir)
        self.wdir = self.save_dir / "weights"
        self.dist = dist_info or ddp.dist_info_from_env()
        self.device = select_device(cfg.device, self.dist.local_rank)
        ddp.init_distributed(self.device, self.dist, init_method)
        self.is_main = self.dist.is_main
        self._log = log or _default_log
        self.csv_path = self.save_dir / "results.csv"

        if self.device.type == "cpu" and cfg.workers > 0:
            # Loader workers and intra-op threads share the cores; oversubscribed OpenMP threads stall at every
            # op's barrier (measured 20x slower steps on 2 cores), so leave the workers their cores.
            cores = (os.cpu_count() or 1) // max(self.dist.world_size, 1)
            if torch.get_num_threads() + cfg.workers > cores:
                torch.set_num_threads(max(1, cores - cfg.workers))
        seed_everything(cfg.seed + self.dist.rank)
        if cfg.deterministic and self.device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.model = model.to(self.device)
        if self.device.type == "cpu":
            # oneDNN convs on NCHW reorder every input/output; NHWC weights avoid it (measured 1.25x per train
            # step of the scaled yolor-elan on 2 cores, benchmarks/bench_train.py). Same function, same params.
            to_channels_last(self.model)
        self.task.setup(self.model, self.device)

        self.train_ds, self.val_ds = task.datasets()
        if len(self.train_ds) == 0:
            raise GradpathError("the training split is empty: nothing to train on")
        self.batch_per_rank = max(cfg.batch // self.dist.world_size, 1)
        self.sampler = DistributedSampler(self.train_ds, num_replicas=self.dist.world_size, rank=max(self.dist.rank, 0),
                                          shuffle=True, seed=cfg.seed, drop_last=False)
        self.loader_gen = torch.Generator()
        self.train_loader = DataLoader(
            self.train_ds, batch_size=self.batch_per_rank, sampler=self.sampler, num_workers=cfg.workers,
            collate_fn=task.collate_fn, pin_memory=self.device.type == "cuda", drop_last=False,
            worker_init_fn=seed_worker, generator=self.loader_gen, persistent_workers=False,
        )
        self.val_loader = None
        if self.val_ds is not None and len(self.val_ds) > 0:
            # Every rank evaluates its shard; Task.evaluate merges the shards (so no rank waits on a collective
            # that another rank skipped).
            val_sampler = (DistributedSampler(self.val_ds, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                              shuffle=False) if self.dist.enabled else None)
            self.val_loader = DataLoader(self.val_ds, batch_size=self.batch_per_rank, shuffle=False,
                                         sampler=val_sampler, num_workers=min(cfg.workers, 2),
                                         collate_fn=task.collate_fn, pin_memory=self.device.type == "cuda")

        # Accumulate gradients to the nominal batch (Sec. 5.1 recipe); weight decay is per nominal batch.
        self.accumulate = max(round(cfg.nbs / cfg.batch), 1)
        wd = cfg.weight_decay * cfg.batch * self.accumulate / cfg.nbs
        self.optimizer = build_optimizer(self.model, cfg.optimizer, cfg.lr0, cfg.momentum, wd)
        self.nb = len(self.train_loader)
        self.total_iters = cfg.epochs * self.nb
        self.warmup_iters = round(cfg.warmup_epochs * self.nb)
        self.scheduler = build_scheduler(self.optimizer, self.total_iters, self.warmup_iters, cfg.lrf, cfg.schedule,
                                         cfg.warmup_bias_lr, cfg.lr0)
        self.use_amp = bool(cfg.amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.ema = ModelEMA(self.model, cfg.ema_decay, cfg.ema_tau) if cfg.ema else None
        self.start_epoch = 0
        self.best_fitness = -math.inf
        self.metrics: dict[str, float] = {}
        if resume is not None:
            self._load_resume(resume)

        self.train_model: nn.Module = self.model
        if self.dist.enabled:
            if self.device.type == "cuda":
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.train_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    # ------------------------------------------------------------------ logging / files
    def log(self, msg: str) -> None:
        if self.is_main:
            self._log(msg)

    def _write_args(self) -> None:
        args = {"train": dataclasses.asdict(self.cfg), **self.run_info,
                "world_size": self.dist.world_size, "device": str(self.device)}
        tmp = self.save_dir / "args.yaml.tmp"
        tmp.write_text(yaml.safe_dump(_plain(args), sort_keys=False))
        tmp.replace(self.save_dir / "args.yaml")

    def _csv_header(self) -> list[str]:
        return (["epoch"] + [f"train/{n}" for n in self.task.loss_names] + [f"metrics/{n}" for n in self.task.metric_names]
                + [f"lr/pg{i}" for i in range(len(self.optimizer.param_groups))] + ["time_s"])

    def _append_csv(self, row: dict[str, Any]) -> None:
        header = self._csv_header()
        new = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header)
            if new:
                w.writeheader()
            w.writerow({k: _fmt(row.get(k, "")) for k in header})

    def _truncate_csv(self, last_epoch: int) -> None:
        """On resume, drop rows of epochs the checkpoint does not contain (the run died after logging them)."""
        if not self.csv_path.exists():
            return
        with open(self.csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
        header = self._csv_header()
        with open(self.csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                if int(r["epoch"]) <= last_epoch:
                    w.writerow(r)

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "epochs": self.cfg.epochs,
            "best_fitness": self.best_fitness,
            "metrics": dict(self.metrics),
            "model": unwrap(self.model).state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "train_args": _plain(dataclasses.asdict(self.cfg)),
            "run_info": _plain(self.run_info),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        }

    def _load_resume(self, ck: dict[str, Any]) -> None:
        epoch = int(ck["epoch"])
        if epoch + 1 >= self.cfg.epochs:
            raise GradpathError(f"this run already finished all {self.cfg.epochs} epochs; nothing to resume "
                                "(start a new run with another --name)")
        unwrap(self.model).load_state_dict(ck["model"])
        if self.ema is not None and ck.get("ema"):
            self.ema.load_state_dict(ck["ema"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        if ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
        self.best_fitness = float(ck.get("best_fitness", -math.inf))
        self.metrics = dict(ck.get("metrics") or {})
        set_rng_state(ck.get("rng"))
        self.start_epoch = epoch + 1
        if self.is_main:
            self._truncate_csv(epoch)

    def _save(self, epoch: int, is_best: bool) -> None:
        from gradpath.engine.checkpoint import save_checkpoint

        ck = self._checkpoint(epoch)
        save_checkpoint(self.wdir / "last.pt", ck)
        if is_best:
            save_checkpoint(self.wdir / "best.pt", ck)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, float]:
        cfg = self.cfg
        if self.is_main:
            self.wdir.mkdir(parents=True, exist_ok=True)
            self._write_args()
        n_params = sum(p.numel() for p in self.model.parameters())
        self.log(f"training {self.run_info.get('model', type(unwrap(self.model)).__name__)} ({n_params / 1e6:.2f} M params) "
                 f"on {self.device} x{self.dist.world_size}: {len(self.train_ds)} train images, "
                 f"{len(self.val_ds) if self.val_ds is not None else 0} val, {cfg.epochs} epochs, batch {cfg.batch} "
                 f"(accumulate {self.accumulate}), imgsz {cfg.imgsz} → {self.save_dir}")
        t_start = time.time()
        try:
            for epoch in range(self.start_epoch, cfg.epochs):
                t0 = time.time()
                losses = self._train_epoch(epoch)
                self._end_epoch(epoch, losses, time.time() - t0)
        finally:
            ddp.cleanup()
        self.log(f"{cfg.epochs - self.start_epoch} epochs done in {(time.time() - t_start) / 60:.1f} min; "
                 f"results in {self.save_dir}")
        return self.metrics

    def _train_epoch(self, epoch: int) -> torch.Tensor:
        from tqdm import tqdm

        cfg = self.cfg
        self.train_model.train()
        # Every random draw of this epoch depends only on (seed, epoch, rank): resume replays it exactly.
        seed_everything(epoch_seed(cfg.seed, epoch, self.dist.rank))
        self.loader_gen.manual_seed(epoch_seed(cfg.seed, epoch, self.dist.rank))
        self.sampler.set_epoch(epoch)
        mloss = torch.zeros(len(self.task.loss_names), device=self.device)
        pbar = enumerate(self.train_loader)
        show = self.is_main and self.progress
        if show:
            pbar = tqdm(pbar, total=self.nb, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=True,
                        bar_format="{l_bar}{bar:12}{r_bar}", file=sys.stdout, dynamic_ncols=False, ncols=110)
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in pbar:
            it = i + self.nb * epoch
            warmup_momentum(self.optimizer, it, self.warmup_iters, cfg.warmup_momentum, cfg.momentum)
            batch = self.task.preprocess(batch, self.device)
            with torch.autocast(device_type=self.device.type, enabled=self.use_amp):
                loss, items = self.task.loss(self.train_model, batch)
            if not torch.isfinite(loss):
                raise GradpathError(f"loss became {loss.item()} at epoch {epoch + 1}, batch {i + 1}; "
                                    "lower --lr0 or check the labels (gradpath check-data)")
            # DDP averages gradients over ranks; scaling by the world size keeps them those of the total batch.
            self.scaler.scale(loss * self.dist.world_size).backward()
            if (i + 1) % self.accumulate == 0 or i + 1 == self.nb:
                self._step()
            with warnings.catch_warnings():  # with accumulation the lr moves before the first optimizer step
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
                self.scheduler.step()
            mloss = (mloss * i + items.detach().to(mloss)) / (i + 1)
            if show:
                pbar.set_postfix_str(" ".join(f"{n}={v:.3f}" for n, v in zip(self.task.loss_names, mloss.tolist())))
        if show:
            pbar.close()
        elif self.is_main:
            self.log(f"epoch {epoch + 1}/{cfg.epochs}: " + " ".join(
                f"{n}={v:.3f}" for n, v in zip(self.task.loss_names, mloss.tolist())))
        return ddp.all_reduce_mean(mloss)

    def _step(self) -> None:
        if self.cfg.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)

    def eval_model(self) -> nn.Module:
        return self.ema.ema if self.ema is not None else unwrap(self.model)

    def _end_epoch(self, epoch: int, losses: torch.Tensor, seconds: float) -> None:
        cfg = self.cfg
        final = epoch + 1 == cfg.epochs
        metrics: dict[str, float] = {}
        if self.val_loader is not None and ((epoch + 1) % cfg.val_interval == 0 or final):
            model = self.eval_model()
            was_training = model.training
            model.eval()
            metrics = dict(self.task.evaluate(model, self.val_loader, self.device))
            model.train(was_training)
        payload = None
        if self.is_main:
            fitness = self.task.fitness(metrics) if metrics else -math.inf
            is_best = bool(metrics) and fitness >= self.best_fitness
            if is_best:
                self.best_fitness = fitness
            if metrics:
                self.metrics = metrics
            row = {"epoch": epoch, "time_s": seconds}
            row.update({f"train/{n}": v for n, v in zip(self.task.loss_names, losses.tolist())})
            row.update({f"metrics/{k}": v for k, v in metrics.items()})
            row.update({f"lr/pg{j}": g["lr"] for j, g in enumerate(self.optimizer.param_groups)})
            self._append_csv(row)
            self._save(epoch, is_best or (final and self.best_fitness == -math.inf))
            if metrics:
                self.log("  " + "  ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float))))
            if cfg.plots:
                try:
                    from gradpath.engine.plots import plot_results

                    plot_results(self.csv_path)
                    if final and self.val_loader is not None:
                        maybe_plot(self.task, self.eval_model(), self.val_loader, self.device, self.save_dir)
                except Exception as e:  # a plot must never lose a training run
                    self.log(f"  (plotting failed: {type(e).__name__}: {e})")
            payload = (self.best_fitness, self.metrics)
        # Other ranks wait here while rank 0 writes files; then everyone agrees on best/metrics.
        ddp.barrier()
        self.best_fitness, self.metrics = ddp.broadcast_object(payload)


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def _plain(obj: Any) -> Any:
    """YAML/weights_only-safe copy: tuples → lists, Paths → str, dataclasses → dicts."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)
