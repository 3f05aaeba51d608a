"""A task added from outside (here: a toy regression) trains and resumes through the real CLI path.

Nothing in ``engine/`` or ``commands/`` knows it: it registers itself in the task registry, and ``gradpath train
--task toyreg`` composes it with a registered model and the engine like any built-in task.
"""
from __future__ import annotations

import csv

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from gradpath.cli import main
from gradpath.engine.checkpoint import load_checkpoint
from gradpath.tasks.registry import get_task, list_tasks, register_task, unregister_task


class BrightnessDataset(Dataset):
    """Random images whose target is their mean brightness: a regression a tiny CNN learns in a few steps."""

    def __init__(self, n: int, imgsz: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, imgsz, imgsz, generator=g) * torch.rand(n, 1, 1, 1, generator=g)
        self.y = self.x.mean(dim=(1, 2, 3))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


class ToyRegressionTask:
    name = "toyreg"
    loss_names = ("mse",)
    metric_names = ("mae",)
    collate_fn = None

    def __init__(self, imgsz: int = 32, n_train: int = 16, progress: bool = True) -> None:
        self.imgsz, self.n_train = imgsz, n_train

    @property
    def options(self) -> dict:
        return {"imgsz": self.imgsz, "n_train": self.n_train}

    def model_overrides(self) -> dict:
        return {"num_classes": 1}  # one output: the predicted brightness

    def checkpoint_meta(self) -> dict:
        return {"imgsz": self.imgsz}

    def datasets(self):
        return BrightnessDataset(self.n_train, self.imgsz, 0), BrightnessDataset(8, self.imgsz, 1)

    def setup(self, model, device) -> None:
        self.crit = nn.MSELoss()

    def preprocess(self, batch, device):
        x, y = batch
        return x.to(device), y.to(device)

    def loss(self, model, batch):
        x, y = batch
        loss = self.crit(model(x).squeeze(1), y)
        return loss, loss.detach().reshape(1)

    @torch.no_grad()
    def evaluate(self, model, loader, device):
        err = [(model(x.to(device)).squeeze(1) - y.to(device)).abs() for x, y in loader]
        return {"mae": torch.cat(err).mean().item()}

    def fitness(self, metrics):
        return -metrics["mae"]

    def summary(self, metrics):
        return f"toy MAE={metrics['mae']:.5f}"


@pytest.fixture
def toy_task():
    register_task(ToyRegressionTask)
    yield ToyRegressionTask
    unregister_task("toyreg")  # the registry is left as it was found
    assert "toyreg" not in list_tasks()


ARGS = ["--task", "toyreg", "--model", "tiny-res", "--batch", "4", "--nbs", "4", "--workers", "0", "--device", "cpu",
        "--quiet", "--warmup-epochs", "0", "--lr0", "0.01", "--seed", "5"]


def test_a_new_task_trains_and_resumes_through_the_cli(tmp_path, toy_task, capsys, monkeypatch):
    assert get_task("toyreg") is ToyRegressionTask
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    assert main(["train", *ARGS, "--epochs", "2", "--project", str(tmp_path), "--name", "full"]) == 0
    assert torch.equal(torch.get_rng_state(), before)  # the run seeded its generators and gave the caller's back
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("toy MAE=")
    full = tmp_path / "toyreg" / "full"
    ck = load_checkpoint(full / "weights" / "last.pt")
    assert ck["task"] == "toyreg" and ck["task_options"] == {"imgsz": 32, "n_train": 16}
    assert ck["model"]["name"] == "tiny-res" and ck["model"]["config"]["num_classes"] == 1
    assert ck["meta"] == {"imgsz": 32} and ck["epoch"] == 1 and ck["version"] == 2
    rows = list(csv.DictReader(open(full / "results.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1"] and rows[1]["metrics/mae"] != ""

    # The same run stopped after its first epoch, then resumed by the CLI, ends with the same weights.
    from gradpath.engine.trainer import Trainer

    original = Trainer._train_epoch

    def dying(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "_train_epoch", dying)
    # Ctrl-C: the CLI reports it and exits 130, the checkpoint of the finished epoch stays
    assert main(["train", *ARGS, "--epochs", "2", "--project", str(tmp_path), "--name", "cut"]) == 130
    monkeypatch.setattr(Trainer, "_train_epoch", original)
    assert main(["train", "--resume", str(tmp_path / "toyreg" / "cut"), "--quiet"]) == 0
    a = load_checkpoint(full / "weights" / "last.pt")
    b = load_checkpoint(tmp_path / "toyreg" / "cut" / "weights" / "last.pt")
    assert b["epoch"] == 1
    for k, v in a["weights"].items():
        assert torch.equal(v, b["weights"][k]), k
    assert a["metrics"] == b["metrics"]
