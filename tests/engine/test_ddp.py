"""Two-process gloo DDP smoke test: one tiny epoch, sharded evaluation on both ranks, no hang."""
from __future__ import annotations

import os

import torch
import torch.multiprocessing as mp
from engine_toy import ToyTask, toy_model

from gradpath.engine import TrainConfig, Trainer
from gradpath.engine.ddp import DistInfo


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)  # identical initial weights on both ranks (DDP also broadcasts rank 0's)
    task = ToyTask(n_train=16, n_val=8)
    cfg = TrainConfig(epochs=1, batch=8, nbs=8, imgsz=8, lr0=0.05, warmup_epochs=0, workers=0, seed=1,
                      device="cpu", plots=False, name="ddp", project=out_dir)
    tr = Trainer(toy_model(), task, cfg, os.path.join(out_dir, "ddp"), log=lambda m: None,
                 dist_info=DistInfo(rank=rank, local_rank=rank, world_size=world), init_method=f"file://{init_file}")
    assert tr.batch_per_rank == 4 and len(tr.train_loader) == 2  # 16 images split over 2 ranks
    metrics = tr.fit()
    # Each rank evaluated its half of the val set once; the merged metrics agree.
    torch.save({"rank": rank, "metrics": metrics, "evals": task.eval_calls,
                "weights": tr.model.state_dict()}, os.path.join(out_dir, f"rank{rank}.pt"))


def test_two_process_gloo_ddp_trains_and_evaluates(tmp_path):
    ctx = mp.start_processes(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=False,
                             start_method="spawn")
    for _ in range(240):  # ≤ 120 s, then kill instead of hanging the suite
        if ctx.join(timeout=0.5):
            break
    else:
        for p in ctx.processes:
            p.kill()
        raise AssertionError("DDP run did not finish within 120 s (hang?)")
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["evals"] == 1 and r1["evals"] == 1
    assert r0["metrics"] == r1["metrics"] and 0.0 <= r0["metrics"]["acc"] <= 1.0
    for k, v in r0["weights"].items():  # gradients were averaged: the replicas stayed identical
        if v.dtype.is_floating_point and "running" not in k:
            assert torch.equal(v, r1["weights"][k]), k
    assert (tmp_path / "ddp" / "weights" / "last.pt").exists() and (tmp_path / "ddp" / "results.csv").exists()
