"""The generic training loop shared by every task.

It runs the optimisation recipe the paper trains with (Sec. 5.1: YOLOv5's — SGD with Nesterov momentum or AdamW,
linear warm-up of lr/momentum, cosine or linear decay, gradient accumulation to a nominal batch, EMA weights that
are evaluated and kept, gradient-norm clipping, mixed precision on CUDA only). It knows a task only through
``gradpath.engine.task.Task``.

Run folder (``save_dir``): ``args.yaml``, ``results.csv`` (a row per epoch), ``results.png``, ``weights/last.pt``
and ``weights/best.pt`` (written atomically, one schema: ``gradpath.engine.checkpoint``), plus the task's figures.
A checkpoint holds everything ``--resume`` needs to continue *exactly*: weights, EMA, optimizer, scheduler, AMP
scaler, RNG states and the epoch.

Nothing is lost when a run is stopped:

- SIGINT (Ctrl-C) or SIGTERM (pre-emption) mid-epoch: the loop finishes the forward pass it is in, writes
  ``weights/last.pt`` with the position reached (``train.position``: epoch, batches done, the running loss mean,
  gradients accumulated towards the next optimizer step, every rank's RNG state from before the first batch not
  done) and stops (``RunInterrupted``, a ``KeyboardInterrupt``; or ``RunTerminated``, exit status 143). ``--resume``
  skips the batches already done in the sampler (each epoch's order depends only on the seed and the epoch) and
  continues with the same state, so with ``workers=0`` the final weights equal those of an uninterrupted run.
  With loader workers, the augmentations of the rest of *that* epoch differ: each worker's RNG is seeded when the
  epoch's iterator starts and has drawn for every batch it prepared before, which a resumed worker has not; from
  the next epoch on every stream is reseeded per epoch and matches again.
- A non-finite loss stops the run with the epoch and batch, after saving the state from before that batch.
- ``kill -9`` loses at most the current epoch: ``last.pt`` of the last finished epoch is resumed.
- A full disk while saving keeps the previous checkpoint (``gradpath.engine.checkpoint.save_checkpoint``).
- Under DDP every rank agrees on those stops each iteration (``ddp.any_rank``), so no rank waits in a
  collective the others left.

Constructing a ``Trainer`` builds the parts of a run (device, loaders, optimizer, schedule, EMA) and changes no
process-wide state; ``fit()`` applies thread count, determinism and the process group for the run only and puts
them back afterwards (``gradpath.engine.environment``).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler
from tqdm import tqdm

from gradpath.checks import check_device
from gradpath.engine import ddp
from gradpath.engine.checkpoint import build_checkpoint, plain, save_checkpoint
from gradpath.engine.config import TrainConfig
from gradpath.engine.ema import ModelEMA, recent_share, suggested_decay
from gradpath.engine.environment import (RunInterrupted, RunTerminated, StopRequests, cpu_threads_for,
                                         process_group, run_settings, stop_requests)
from gradpath.engine.optim import build_optimizer, build_scheduler, warmup_momentum
from gradpath.engine.plots import plot_results
from gradpath.engine.results import ResultsCSV
from gradpath.engine.task import Task, task_meta, task_options, task_plot, task_summary
from gradpath.engine.utils import epoch_seed, rng_state, seed_everything, seed_worker, set_rng_state, unwrap
from gradpath.errors import GradpathError, GradpathWarning, TrainingDiverged
from gradpath.nn import to_channels_last

__all__ = ["Trainer", "TrainConfig", "RunInterrupted", "RunTerminated"]


def _default_log(msg: str) -> None:
    tqdm.write(msg, file=sys.stdout)


class _SkipStart(Sampler):
    """The epoch's sampler order without its first ``skip`` indices: how a resumed epoch leaves out the batches
    it already trained on without loading them again."""

    def __init__(self, base: Sampler) -> None:
        self.base = base
        self.skip = 0

    def __iter__(self):
        return itertools.islice(iter(self.base), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.base) - self.skip, 0)


class Trainer:
    """``Trainer(model, task, cfg, save_dir).fit()`` → the final metrics dict.

    ``model_spec`` (``{"name", "config", "overrides"}`` of a registered model) is stored in checkpoints so
    ``val``/``predict``/``export`` can rebuild the network; a model that is not registered trains and resumes
    (from the same model object) but its checkpoints cannot be rebuilt by name. ``resume`` is a loaded checkpoint
    to continue. Under torchrun the process group is joined in ``fit()``; ``dist_info``/``init_method`` let tests
    spawn ranks directly.
    """

    def __init__(self, model: nn.Module, task: Task, cfg: TrainConfig, save_dir: str | Path, *,
                 model_spec: Mapping[str, Any] | None = None, resume: Mapping[str, Any] | None = None,
                 log: Callable[[str], None] | None = None, dist_info: ddp.DistInfo | None = None,
                 init_method: str | None = None, progress: bool = True) -> None:
        cfg.validate()
        self.cfg, self.task, self.progress = cfg, task, progress
        self.model_spec = dict(model_spec or {"name": type(model).__name__, "config": {}, "overrides": {}})
        self.save_dir = Path(save_dir)
        self.wdir = self.save_dir / "weights"
        self.dist = dist_info or ddp.dist_info_from_env()
        self.init_method = init_method
        self.is_main = self.dist.is_main
        self._log = log or _default_log
        self.device = check_device(cfg.device, self.dist.local_rank)

        self.model = model.to(self.device)
        if self.device.type == "cpu" and cfg.channels_last:
            # oneDNN convs on NCHW reorder every input/output; NHWC weights avoid it (measured 1.25x per train
            # step of the scaled yolor-elan on 2 cores, benchmarks/bench_train.py). Same function, same params.
            # Not every network gains as much: one thread, yolov5s-seg b8@320 ran 1.62 img/s channels-last and
            # 1.70 NCHW (benchmarks/bench_yolov5.py [--nchw]); --no-channels-last keeps NCHW.
            to_channels_last(self.model)
        self.task.setup(self.model, self.device)
        self._build_loaders()
        self._build_optimization()
        self.start_epoch = 0
        self._resume_position: dict[str, Any] | None = None  # set by a mid-epoch checkpoint
        self.stops = StopRequests()  # replaced by fit(): signals recorded while it runs
        self.best_fitness = -math.inf
        self.metrics: dict[str, float] = {}
        self.train_model: nn.Module = self.model
        self.results = ResultsCSV(self.save_dir / "results.csv", self._csv_columns())
        if resume is not None:
            self._load_resume(resume)

    # ------------------------------------------------------------------ construction
    def _build_loaders(self) -> None:
        cfg, task = self.cfg, self.task
        self.train_ds, self.val_ds = task.datasets()
        if len(self.train_ds) == 0:
            raise GradpathError("the training split is empty: nothing to train on")
        self.batch_per_rank = max(cfg.batch // self.dist.world_size, 1)
        self.sampler = DistributedSampler(self.train_ds, num_replicas=self.dist.world_size,
                                          rank=max(self.dist.rank, 0), shuffle=True, seed=cfg.seed, drop_last=False)
        self.epoch_sampler = _SkipStart(self.sampler)
        self.loader_gen = torch.Generator()
        pin = self.device.type == "cuda"
        self.train_loader = DataLoader(
            self.train_ds, batch_size=self.batch_per_rank, sampler=self.epoch_sampler, num_workers=cfg.workers,
            collate_fn=task.collate_fn, pin_memory=pin, drop_last=False, worker_init_fn=seed_worker,
            generator=self.loader_gen, persistent_workers=False)
        self.val_loader = None
        if self.val_ds is not None and len(self.val_ds) > 0:
            # Every rank evaluates its shard; Task.evaluate merges the shards (so no rank waits on a collective
            # that another rank skipped).
            val_sampler = (DistributedSampler(self.val_ds, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                              shuffle=False) if self.dist.enabled else None)
            self.val_loader = DataLoader(self.val_ds, batch_size=self.batch_per_rank, shuffle=False,
                                         sampler=val_sampler, num_workers=min(cfg.workers, 2),
                                         collate_fn=task.collate_fn, pin_memory=pin)

    def _build_optimization(self) -> None:
        cfg = self.cfg
        # Accumulate gradients to the nominal batch (Sec. 5.1 recipe); weight decay is per nominal batch.
        nbs = cfg.nbs or cfg.batch
        self.accumulate = max(round(nbs / cfg.batch), 1)
        wd = cfg.weight_decay * cfg.batch * self.accumulate / nbs
        self.optimizer = build_optimizer(self.model, cfg.optimizer, cfg.lr0, cfg.momentum, wd)
        self.nb = len(self.train_loader)
        self.total_iters = cfg.epochs * self.nb
        self.warmup_iters = round(cfg.warmup_epochs * self.nb)
        self.scheduler = build_scheduler(self.optimizer, self.total_iters, self.warmup_iters, cfg.lrf, cfg.schedule,
                                         cfg.warmup_bias_lr, cfg.lr0)
        self.use_amp = bool(cfg.amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.ema = ModelEMA(self.model, cfg.ema_decay, cfg.ema_tau) if cfg.ema else None
        self._check_ema_horizon()

    def _check_ema_horizon(self) -> None:
        """Warn when the evaluated EMA would be made mostly of the run's early weights (decay too slow for the run).

        Why: YOLOv5's 0.9999 suits COCO's ~550k updates; on a small set a run has a few thousand, and its EMA then
        freezes near the weights of its first epochs — the final model silently misses most of the training.
        """
        total = math.ceil(self.total_iters / self.accumulate)
        if self.ema is None or total < 2 or not self.is_main:
            return
        share = recent_share(self.cfg.ema_decay, self.cfg.ema_tau, total, total // 2)
        if share < 0.5:
            warnings.warn(GradpathWarning(
                f"ema_decay {self.cfg.ema_decay:g} averages over ~{1 / (1 - self.cfg.ema_decay):.0f} updates but the "
                f"run has {total}: its second half would make up only {share:.0%} of the evaluated EMA weights; use "
                f"--ema-decay {suggested_decay(total):g} (or --no-ema)"), stacklevel=2)

    def _csv_columns(self) -> list[str]:
        return (["epoch"] + [f"train/{n}" for n in self.task.loss_names]
                + [f"metrics/{n}" for n in self.task.metric_names]
                + [f"lr/pg{i}" for i in range(len(self.optimizer.param_groups))] + ["time_s"])

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self, epoch: int, position: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """This run's state after ``epoch`` in the checkpoint schema (``weights`` = what is evaluated).

        ``position`` marks a checkpoint taken inside epoch ``epoch + 1`` (see ``_save_position``).
        """
        raw = unwrap(self.model).state_dict()
        ema = self.ema.state_dict() if self.ema else None
        train = {
            "args": plain(dataclasses.asdict(self.cfg)),
            "model": raw if self.ema else None,  # without EMA, ``weights`` are the raw weights: not stored twice
            "ema": {k: v for k, v in ema.items() if k != "ema"} if ema else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
        }
        if position is not None:
            train["position"] = dict(position)
            train["rng"] = position["ranks"][0]["rng"]
        return build_checkpoint(
            task=self.task.name, task_options=plain(task_options(self.task)), meta=plain(task_meta(self.task)),
            model=plain(self.model_spec), weights=ema["ema"] if ema else raw, epoch=epoch, epochs=self.cfg.epochs,
            metrics=plain(self.metrics), best_fitness=self.best_fitness, train=train)

    def _load_resume(self, ck: Mapping[str, Any]) -> None:
        train = ck.get("train")
        if not isinstance(train, Mapping) or not train.get("optimizer"):
            raise GradpathError("this checkpoint holds no optimizer state: it cannot be resumed")
        epoch = int(ck["epoch"])
        if epoch + 1 >= self.cfg.epochs:
            raise GradpathError(f"this run already finished all {self.cfg.epochs} epochs; nothing to resume "
                                "(start a new run with another --name)")
        raw = train.get("model") or ck["weights"]
        unwrap(self.model).load_state_dict(raw)
        if self.ema is not None and train.get("ema"):
            self.ema.load_state_dict({"ema": ck["weights"], **train["ema"]})
        self.optimizer.load_state_dict(train["optimizer"])
        self.scheduler.load_state_dict(train["scheduler"])
        if train.get("scaler"):
            self.scaler.load_state_dict(train["scaler"])
        bf = ck.get("best_fitness")
        self.best_fitness = float(bf) if bf is not None else -math.inf
        self.metrics = dict(ck.get("metrics") or {})
        set_rng_state(train.get("rng"))
        self.start_epoch = epoch + 1
        position = train.get("position")
        if position:
            if int(position["epoch"]) != epoch + 1 or not 0 <= int(position["batches"]) <= self.nb:
                raise GradpathError(f"this checkpoint stopped at batch {position['batches']} of epoch "
                                    f"{int(position['epoch']) + 1}, which does not fit its run ({self.nb} batches "
                                    "an epoch); was the dataset changed?")
            self._resume_position = dict(position)
        if self.is_main:
            self.results.truncate(epoch)

    def _save_position(self, epoch: int, batches: int, mloss: torch.Tensor, rng: dict[str, Any]) -> Path:
        """Write ``last.pt`` holding the run inside ``epoch`` after ``batches`` batches; returns its path.

        ``rng`` is this rank's RNG state from before batch ``batches`` was drawn; gradients accumulated since the
        last optimizer step are kept so an accumulation window can be cut anywhere. Collective under DDP.
        """
        ranks = ddp.gather_to_main({"rng": rng, "mloss": mloss.detach().cpu()})
        path = self.wdir / "last.pt"
        if self.is_main:
            grads = [None if p.grad is None else p.grad.detach().cpu() for p in self.model.parameters()]
            position = {"epoch": epoch, "batches": batches, "ranks": ranks,
                        "grads": grads if any(g is not None for g in grads) else None}
            save_checkpoint(path, self.checkpoint(epoch - 1, position))
        ddp.barrier()
        return path

    def _resume_inside_epoch(self, epoch: int, mloss: torch.Tensor) -> int:
        """Restore a mid-epoch checkpoint's running state for ``epoch``; returns the batches to skip (0: none)."""
        position, self._resume_position = self._resume_position, None
        if position is None or int(position["epoch"]) != epoch:
            return 0
        ranks = position["ranks"]
        mine = ranks[self.dist.rank] if len(ranks) == self.dist.world_size else ranks[0]
        mloss.copy_(torch.as_tensor(mine["mloss"]).to(mloss))
        for p, g in zip(self.model.parameters(), position.get("grads") or []):
            p.grad = None if g is None else g.to(device=p.device, dtype=p.dtype)
        set_rng_state(mine["rng"])
        return int(position["batches"])

    def _stop(self, where: str, path: Path) -> None:
        """End the run for a recorded signal, with one line saying where the checkpoint is."""
        name = "SIGTERM" if self.stops.signum == signal.SIGTERM else "SIGINT"
        msg = f"{name}: stopped {where}; checkpoint {path}, continue with --resume {path}"
        self.log(msg)
        self.stops.stop(msg, str(path))

    def _save(self, epoch: int, is_best: bool) -> None:
        ck = self.checkpoint(epoch)
        save_checkpoint(self.wdir / "last.pt", ck)
        if is_best:
            save_checkpoint(self.wdir / "best.pt", ck)

    # ------------------------------------------------------------------ logging / files
    def log(self, msg: str) -> None:
        if self.is_main:
            self._log(msg)

    def _write_args(self) -> None:
        args = {"task": self.task.name, "task_options": task_options(self.task), "model": self.model_spec,
                "train": dataclasses.asdict(self.cfg), "world_size": self.dist.world_size, "device": str(self.device)}
        tmp = self.save_dir / "args.yaml.tmp"
        tmp.write_text(yaml.safe_dump(plain(args), sort_keys=False))
        tmp.replace(self.save_dir / "args.yaml")

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, float]:
        """Train from ``start_epoch`` to ``cfg.epochs``; process-wide settings are restored when it returns."""
        threads = cpu_threads_for(self.cfg.workers, self.dist.world_size) if self.device.type == "cpu" else None
        group = process_group(self.device, self.dist, self.init_method, self.cfg.dist_timeout_min)
        with run_settings(threads=threads, deterministic=self.cfg.deterministic and self.device.type == "cpu"), \
                group, stop_requests() as self.stops:
            self._wrap_distributed()
            try:
                return self._fit()
            finally:
                self.train_model = self.model
                self.stops = StopRequests()

    def _wrap_distributed(self) -> None:
        if not self.dist.enabled:
            return
        if self.device.type == "cuda":
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.train_model = nn.parallel.DistributedDataParallel(
            self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def _fit(self) -> dict[str, float]:
        cfg = self.cfg
        if self.is_main:
            self.wdir.mkdir(parents=True, exist_ok=True)
            self._write_args()
            if self.start_epoch == 0 and self._resume_position is None:
                self.results.reset()  # a fresh run in a reused folder (--exist-ok) starts its own results.csv
            if self.start_epoch > 0 or self._resume_position is not None:
                # A run killed while writing a checkpoint leaves its temp file (save_checkpoint's
                # ``.<name>.<random>.tmp``): as large as a checkpoint and never read.
                for stale in self.wdir.glob(".*.pt.*.tmp"):
                    stale.unlink()
        n_params = sum(p.numel() for p in self.model.parameters())
        self.log(f"training {self.model_spec.get('name')} ({n_params / 1e6:.2f} M params) on {self.device} "
                 f"x{self.dist.world_size}: {len(self.train_ds)} train, "
                 f"{len(self.val_ds) if self.val_ds is not None else 0} val, {cfg.epochs} epochs, batch {cfg.batch} "
                 f"(accumulate {self.accumulate}) → {self.save_dir}")
        t_start = time.time()
        for epoch in range(self.start_epoch, cfg.epochs):
            t0 = time.time()
            losses = self._train_epoch(epoch)
            self._end_epoch(epoch, losses, time.time() - t0)
            if epoch + 1 < cfg.epochs and ddp.any_rank(self.stops.pending)[0]:  # a signal during evaluation
                self._stop(f"after epoch {epoch + 1}/{cfg.epochs}", self.wdir / "last.pt")
        self.log(f"{cfg.epochs - self.start_epoch} epochs done in {(time.time() - t_start) / 60:.1f} min; "
                 f"results in {self.save_dir}")
        return self.metrics

    def _train_epoch(self, epoch: int) -> torch.Tensor:
        cfg = self.cfg
        self.train_model.train()
        # Every random draw of this epoch depends only on (seed, epoch, rank): resume replays it exactly.
        seed_everything(epoch_seed(cfg.seed, epoch, self.dist.rank))
        self.loader_gen.manual_seed(epoch_seed(cfg.seed, epoch, self.dist.rank))
        self.sampler.set_epoch(epoch)
        mloss = torch.zeros(len(self.task.loss_names), device=self.device)
        self.optimizer.zero_grad(set_to_none=True)
        start = self._resume_inside_epoch(epoch, mloss)
        self.epoch_sampler.skip = start * self.batch_per_rank
        batches = iter(self.train_loader)
        pbar = None
        if self.is_main and self.progress:
            pbar = tqdm(total=self.nb, initial=start, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=True,
                        bar_format="{l_bar}{bar:12}{r_bar}", file=sys.stdout, dynamic_ncols=False, ncols=110)
        for i in range(start, self.nb):
            # What a checkpoint taken at this batch must restore: the RNG before the batch is drawn and the
            # buffers (BN statistics) before its forward pass updates them. Measured on full-size yolor-elan (279
            # buffers, 47 k values) on the shared 2-core CPU: 0.4 ms + 3.6 ms a batch, against seconds a step.
            rng_before = rng_state()
            buffers_before = [b.detach().clone() for b in self.model.buffers()]
            batch = next(batches)
            it = i + self.nb * epoch
            warmup_momentum(self.optimizer, it, self.warmup_iters, cfg.warmup_momentum, cfg.momentum)
            batch = self.task.preprocess(batch, self.device)
            with torch.autocast(device_type=self.device.type, enabled=self.use_amp):
                loss, items = self.task.loss(self.train_model, batch)
            finite = bool(torch.isfinite(loss))
            stop, bad = ddp.any_rank(self.stops.pending, not finite)
            if stop or bad:  # this batch is not trained on: the checkpoint holds the state from before it
                if pbar is not None:
                    pbar.close()
                with torch.no_grad():
                    for b, saved in zip(self.model.buffers(), buffers_before):
                        b.copy_(saved)
                path = self._save_position(epoch, i, mloss, rng_before)
                where = f"at epoch {epoch + 1}/{cfg.epochs}, batch {i + 1}/{self.nb}"
                if bad:
                    what = f"loss became {loss.item()}" if not finite else "another rank's loss became non-finite"
                    raise TrainingDiverged(f"{what} {where}; the last good state (before that batch) is in {path}; "
                                           "lower --lr0 or check the labels (gradpath check-data)",
                                           epoch=epoch + 1, batch=i + 1, checkpoint=str(path))
                self._stop(where, path)
            # DDP averages gradients over ranks; scaling by the world size keeps them those of the total batch.
            self.scaler.scale(loss * self.dist.world_size).backward()
            if (i + 1) % self.accumulate == 0 or i + 1 == self.nb:
                self._step()
            with warnings.catch_warnings():  # with accumulation the lr moves before the first optimizer step
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
                self.scheduler.step()
            mloss = (mloss * i + items.detach().to(mloss)) / (i + 1)
            if pbar is not None:
                pbar.update(1)
                pbar.set_postfix_str(" ".join(f"{n}={v:.3f}" for n, v in zip(self.task.loss_names, mloss.tolist())))
        if pbar is not None:
            pbar.close()
        if ddp.any_rank(self.stops.pending)[0]:  # stopped after the last batch: evaluation is still to come
            self._stop(f"at the end of epoch {epoch + 1}/{cfg.epochs}, before evaluation",
                       self._save_position(epoch, self.nb, mloss, rng_state()))
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
        """The weights that are evaluated and kept: the EMA's when the run keeps one."""
        return self.ema.ema if self.ema is not None else unwrap(self.model)

    def _end_epoch(self, epoch: int, losses: torch.Tensor, seconds: float) -> None:
        cfg = self.cfg
        final = epoch + 1 == cfg.epochs
        metrics: dict[str, float] = {}
        if self.val_loader is not None and ((epoch + 1) % cfg.val_interval == 0 or final):
            model = self.eval_model()
            # Without SyncBatchNorm (CPU/gloo) each rank's BN statistics drift apart; every rank scores its shard
            # with rank 0's, the ones rank 0 saves.
            ddp.broadcast_buffers(model)
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
            self.results.append(row)
            self._save(epoch, is_best or (final and self.best_fitness == -math.inf))
            if metrics:
                self.log("  " + task_summary(self.task, metrics))
            if cfg.plots:
                plot_results(self.results.path)
                if final and self.val_loader is not None:
                    task_plot(self.task, self.eval_model(), self.val_loader, self.device, self.save_dir)
            payload = (self.best_fitness, self.metrics)
        # Other ranks wait here while rank 0 writes files; then everyone agrees on best/metrics.
        ddp.barrier()
        self.best_fitness, self.metrics = ddp.broadcast_object(payload)
