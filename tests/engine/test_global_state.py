"""Library calls leave process-wide state as they found it: threads, determinism, matplotlib, process groups."""
from __future__ import annotations

import sys

import matplotlib
import torch
import torch.distributed as dist
from engine_toy import ToyTask, toy_model

from gradpath.engine import TrainConfig, Trainer


def _fit(tmp_path, name, **kw):
    torch.manual_seed(0)
    cfg = TrainConfig(**{**dict(epochs=1, batch=8, nbs=8, lr0=0.05, warmup_epochs=0, workers=0, seed=3,
                                device="cpu", project=str(tmp_path), name=name), **kw})
    tr = Trainer(toy_model(), ToyTask(), cfg, tmp_path / name, log=lambda m: None)
    return tr, tr.fit()


def test_fit_restores_threads_and_determinism(tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    seen = {}
    original = Trainer._train_epoch

    def spy(self, epoch):
        seen["threads"] = torch.get_num_threads()
        seen["det"] = torch.are_deterministic_algorithms_enabled()
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "_train_epoch", spy)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    torch.set_num_threads(2)
    try:
        _fit(tmp_path, "a", workers=1, deterministic=True)
        assert seen == {"threads": 1, "det": True}  # applied for the run: the loader worker gets a core
        assert torch.get_num_threads() == 2  # and put back afterwards
        assert torch.are_deterministic_algorithms_enabled() is False
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)


def test_plots_leave_matplotlib_alone(tmp_path):
    backend = matplotlib.get_backend()
    _fit(tmp_path, "p", plots=True)
    assert (tmp_path / "p" / "results.png").is_file()
    assert matplotlib.get_backend() == backend
    if "matplotlib.pyplot" in sys.modules:  # nothing was drawn through pyplot's global figure manager
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


def test_a_callers_process_group_survives_two_fits(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        _fit(tmp_path, "g1")
        assert dist.is_initialized()  # fit() did not destroy a group it did not create
        _fit(tmp_path, "g2")
        assert dist.is_initialized()
        t = torch.ones(1)
        dist.all_reduce(t)  # and the group still works
        assert t.item() == 1.0
    finally:
        dist.destroy_process_group()
