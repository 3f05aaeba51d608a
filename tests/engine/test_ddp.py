"""Two-process gloo DDP: one tiny epoch, sharded evaluation merged on both ranks, replicas kept identical."""
from __future__ import annotations

import os

import torch
import torch.multiprocessing as mp
from engine_toy import ToyDataset, ToyTask, toy_model

from gradpath.engine import TrainConfig, Trainer
from gradpath.engine.ddp import DistInfo

#: Hang guard only (a healthy run takes seconds): a deadlocked collective must fail the test, not stall the suite.
DEADLINE_S = 300


class FixedValDataset(ToyDataset):
    """The toy val set without the random flip, so the test process can score it exactly as the ranks did."""

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


class ShardedToyTask(ToyTask):
    def datasets(self):
        return ToyDataset(self.n_train, 1), FixedValDataset(self.n_val, 2)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)  # identical initial weights on both ranks (DDP also broadcasts rank 0's)
    task = ShardedToyTask(n_train=16, n_val=8)
    cfg = TrainConfig(epochs=1, batch=8, nbs=8, lr0=0.05, warmup_epochs=0, workers=0, seed=1,
                      device="cpu", plots=False, name="ddp", project=out_dir)
    tr = Trainer(toy_model(), task, cfg, os.path.join(out_dir, "ddp"), log=lambda m: None,
                 dist_info=DistInfo(rank=rank, local_rank=rank, world_size=world), init_method=f"file://{init_file}")
    assert tr.batch_per_rank == 4 and len(tr.train_loader) == 2  # 16 images split over 2 ranks
    assert len(tr.val_loader.sampler) == 4  # and each rank scores its half of the 8 val images
    metrics = tr.fit()
    torch.save({"rank": rank, "metrics": metrics, "evals": task.eval_calls,
                "weights": {k: v.detach().clone() for k, v in tr.eval_model().state_dict().items()}},
               os.path.join(out_dir, f"rank{rank}.pt"))


def test_two_process_gloo_ddp_trains_and_evaluates(tmp_path):
    ctx = mp.start_processes(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=False,
                             start_method="spawn")
    for _ in range(DEADLINE_S * 2):
        if ctx.join(timeout=0.5):
            break
    else:
        for p in ctx.processes:
            p.kill()
        raise AssertionError(f"DDP run did not finish within {DEADLINE_S} s (hang?)")
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["evals"] == 1 and r1["evals"] == 1
    for k, v in r0["weights"].items():  # gradients were averaged: the replicas stayed identical
        if v.dtype.is_floating_point and "running" not in k:  # BN statistics are per rank (no SyncBN on CPU)
            assert torch.equal(v, r1["weights"][k]), k

    # The merged metric of the two half-shards equals one process scoring all 8 images with the same weights.
    model = toy_model()
    model.load_state_dict(r0["weights"])
    model.eval()
    val = FixedValDataset(8, 2)
    with torch.no_grad():
        acc = (model(val.x).argmax(1) == val.y).double().mean().item()
    assert r0["metrics"]["acc"] == r1["metrics"]["acc"] == acc
    assert (tmp_path / "ddp" / "weights" / "last.pt").exists() and (tmp_path / "ddp" / "results.csv").exists()
