"""A tiny classification Task for engine tests: 3×8×8 images whose class is the brightest colour channel."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset


class ToyDataset(Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, 8, 8, generator=g)
        self.y = self.x.mean(dim=(2, 3)).argmax(1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        # A random flip drawn from the global RNG, so resume exactness also covers augmentation RNG.
        x = self.x[i]
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, self.y[i]


def toy_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.SiLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


class ToyTask:
    name = "toy"
    loss_names = ("ce",)
    metric_names = ("acc",)
    collate_fn = None

    def __init__(self, n_train: int = 24, n_val: int = 8) -> None:
        self.n_train, self.n_val = n_train, n_val
        self.eval_calls = 0

    def datasets(self):
        return ToyDataset(self.n_train, 1), ToyDataset(self.n_val, 2)

    def setup(self, model, device) -> None:
        self.crit = nn.CrossEntropyLoss()

    def preprocess(self, batch, device):
        x, y = batch
        return x.to(device), y.to(device)

    def loss(self, model, batch):
        x, y = batch
        loss = self.crit(model(x), y)
        return loss * len(x), loss.detach().reshape(1)

    @torch.no_grad()
    def evaluate(self, model, loader, device):
        self.eval_calls += 1
        assert not model.training
        correct = total = 0
        for x, y in loader:
            correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
            total += len(y)
        counts = torch.tensor([correct, total], dtype=torch.float64)
        if torch.distributed.is_initialized():  # each rank saw its shard: merge them
            torch.distributed.all_reduce(counts)
        return {"acc": (counts[0] / counts[1]).item()}

    def fitness(self, metrics):
        return metrics["acc"]
