"""A toy task for the fault tests that a subprocess can train through the real CLI.

``python fault_toy.py train --task faulttoy --model tiny-res ...`` registers the task and runs ``gradpath.cli.main``
(the CLI imports no user modules, so a task defined outside the package is registered by the script that starts
it; under ``torchrun`` each rank runs this file). Faults are injected through environment variables, so a
resumed run (which rebuilds the task from the checkpoint's options) runs clean:

- ``FAULT_PAUSE_AT=k`` and ``FAULT_DIR=d``: the k-th ``loss()`` call of the process writes ``d/ready`` and waits
  (up to 60 s) for ``d/go``, so a test can deliver a signal at a known batch; with ``FAULT_PAUSE_RANK=r`` only
  rank r pauses (a hung rank, seen from the others);
- ``FAULT_DELAY=s``: every ``loss()`` call sleeps ``s`` seconds (a run slow enough to be killed mid-way);
- ``FAULT_RAISE_AT=k`` and ``FAULT_RAISE_RANK=r``: the k-th ``loss()`` call of rank r raises ``RuntimeError``
  (after writing ``FAULT_DIR/raised``, whose time stamp tells a test when the rank died).

``python fault_toy.py pool train ...`` runs the same CLI inside a ``gradpath.job_pool`` job process instead (as
``gradpath reproduce --jobs`` does); the job writes its pid to ``FAULT_DIR/job.pid``.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from gradpath.cli import main
from gradpath.tasks.registry import register_task


class FlippedBrightness(Dataset):
    """Images whose target is their mean brightness, flipped at random by the global torch RNG: resuming exactly
    must restore that RNG too."""

    def __init__(self, n: int, imgsz: int, seed: int, flip: bool) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, imgsz, imgsz, generator=g) * torch.rand(n, 1, 1, 1, generator=g)
        self.y = self.x.mean(dim=(1, 2, 3))
        self.flip = flip

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        x = self.x[i]
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, self.y[i]


class FaultToyTask:
    name = "faulttoy"
    loss_names = ("mse",)
    metric_names = ("mae",)
    collate_fn = None

    def __init__(self, imgsz: int = 32, n_train: int = 16, progress: bool = True) -> None:
        self.imgsz, self.n_train = imgsz, n_train
        self.calls = 0

    @property
    def options(self) -> dict:
        return {"imgsz": self.imgsz, "n_train": self.n_train}

    def model_overrides(self) -> dict:
        return {"num_classes": 1}

    def datasets(self):
        return (FlippedBrightness(self.n_train, self.imgsz, 0, flip=True),
                FlippedBrightness(8, self.imgsz, 1, flip=False))

    def setup(self, model, device) -> None:
        self.crit = nn.MSELoss()

    def preprocess(self, batch, device):
        x, y = batch
        return x.to(device), y.to(device)

    def loss(self, model, batch):
        self.calls += 1
        _inject_faults(self.calls)
        x, y = batch
        loss = self.crit(model(x).squeeze(1), y)
        return loss, loss.detach().reshape(1)

    @torch.no_grad()
    def evaluate(self, model, loader, device):
        err = torch.zeros(2, dtype=torch.float64)
        for x, y in loader:
            e = (model(x.to(device)).squeeze(1) - y.to(device)).abs()
            err += torch.tensor([e.sum().item(), len(e)], dtype=torch.float64)
        if torch.distributed.is_initialized():
            torch.distributed.all_reduce(err)
        return {"mae": (err[0] / err[1]).item()}

    def fitness(self, metrics):
        return -metrics["mae"]


def _inject_faults(call: int) -> None:
    env = os.environ
    if env.get("FAULT_DELAY"):
        time.sleep(float(env["FAULT_DELAY"]))
    if (env.get("FAULT_PAUSE_AT") and call == int(env["FAULT_PAUSE_AT"])
            and env.get("RANK", "0") == env.get("FAULT_PAUSE_RANK", env.get("RANK", "0"))):
        d = Path(env["FAULT_DIR"])
        (d / "ready").touch()
        deadline = time.monotonic() + 60
        while not (d / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    if (env.get("FAULT_RAISE_AT") and call == int(env["FAULT_RAISE_AT"])
            and env.get("RANK", "0") == env.get("FAULT_RAISE_RANK", "0")):
        if env.get("FAULT_DIR"):
            (Path(env["FAULT_DIR"]) / "raised").touch()
        raise RuntimeError(f"injected failure on rank {env.get('RANK', '0')} at loss call {call}")


def run_cli_in_job(argv: list[str]) -> int:
    """A job process's work: register the task (a fresh process) and run the CLI."""
    if os.environ.get("FAULT_DIR"):
        (Path(os.environ["FAULT_DIR"]) / "job.pid").write_text(str(os.getpid()))
    register_task(FaultToyTask)
    return main(argv)


if __name__ == "__main__":
    if sys.argv[1:2] == ["pool"]:
        import fault_toy  # the job function by its module name, which the spawned job process imports

        from gradpath.job_pool import job_pool
        with job_pool(1, 1, poll_s=0.2) as pool:
            sys.exit(pool.submit(fault_toy.run_cli_in_job, sys.argv[2:]).result())
    register_task(FaultToyTask)
    sys.exit(main())
