"""Run-level plumbing the training loop needs: seeding, RNG snapshots, unwrapping DDP.

The device always comes from the run (``--device`` or, under torchrun, ``LOCAL_RANK``), never a hard-coded
``cuda:0``, so the same code runs on CPU, on any GPU and under DDP.
"""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch



def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices). Augmentations may use any of the three."""
    seed = int(seed) % (2**32)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A seed that depends only on (run seed, epoch, rank), so a resumed run draws the same augmentations as an
    uninterrupted one no matter how many random numbers evaluation or plotting consumed in between."""
    return (int(seed) * 1_000_003 + int(epoch) * 7919 + int(rank) * 104_729) % (2**31 - 1)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: torch seeds each worker, NumPy and ``random`` are derived from it."""
    s = torch.initial_seed() % (2**32)
    np.random.seed(s)
    random.seed(s)


def rng_state() -> dict[str, Any]:
    """Snapshot of every RNG a training step may consume (stored in checkpoints for an exact ``--resume``)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state() -> dict[str, Any]:
    # Plain types and tensors only, so checkpoints load with torch.load(weights_only=True).
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def set_rng_state(state: dict[str, Any] | None) -> None:
    if not state:
        return
    if "python" in state:
        py = state["python"]
        # A checkpoint round trip may turn the inner tuple into a list.
        random.setstate((py[0], tuple(py[1]), py[2]))
    if "numpy" in state:
        n = state["numpy"]
        keys = np.asarray(torch.as_tensor(n["keys"]).numpy(), dtype=np.uint32)
        np.random.set_state((n["name"], keys, int(n["pos"]), int(n["has_gauss"]), float(n["cached_gaussian"])))
    if "torch" in state:
        torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda = [torch.as_tensor(s, dtype=torch.uint8).cpu() for s in state["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside DDP/DataParallel wrappers (checkpoints and EMA hold the bare one)."""
    return model.module if hasattr(model, "module") and isinstance(model.module, torch.nn.Module) else model


def env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else default
