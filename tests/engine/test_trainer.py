"""The generic training loop: exact resume, finished-run resume error, schedule/EMA/param-group arithmetic."""
from __future__ import annotations

import csv
import math

import pytest
import torch
from engine_toy import ToyTask, toy_model

from gradpath.engine import TrainConfig, Trainer
from gradpath.engine.checkpoint import load_checkpoint
from gradpath.engine.ema import ModelEMA
from gradpath.engine.optim import LRFactor, build_optimizer, param_groups
from gradpath.errors import GradpathError


def _cfg(tmp_path, name, **kw):
    base = dict(epochs=3, batch=8, nbs=16, lr0=0.05, warmup_epochs=1.0, workers=0, seed=3, device="cpu",
                plots=False, ema_tau=5.0, project=str(tmp_path), name=name)
    base.update(kw)
    return TrainConfig(**base)


def _train(tmp_path, name, resume=None, **kw):
    torch.manual_seed(0)
    model = toy_model()
    tr = Trainer(model, ToyTask(), _cfg(tmp_path, name, **kw), tmp_path / name, resume=resume, log=lambda m: None)
    return tr, tr.fit()


def test_resume_reproduces_uninterrupted_weights(tmp_path, monkeypatch):
    full, _ = _train(tmp_path, "full")

    # The same run, killed while training its second epoch (after epoch 0's checkpoint was written).
    original = Trainer._train_epoch

    def dying(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "_train_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, "cut")
    monkeypatch.setattr(Trainer, "_train_epoch", original)
    ck = load_checkpoint(tmp_path / "cut" / "weights" / "last.pt")
    assert ck["epoch"] == 0
    torch.manual_seed(123)  # a different global RNG state must not matter
    resumed, _ = _train(tmp_path, "cut", resume=ck)

    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ea, eb = full.ema.ema.state_dict(), resumed.ema.ema.state_dict()
    for k in ea:
        assert torch.equal(ea[k], eb[k]), k
    assert full.ema.updates == resumed.ema.updates
    # results.csv: one row per epoch in both runs, identical losses.
    rows = [list(csv.DictReader(open(tmp_path / n / "results.csv"))) for n in ("full", "cut")]
    assert [r["epoch"] for r in rows[1]] == ["0", "1", "2"]
    assert [r["train/ce"] for r in rows[0]] == [r["train/ce"] for r in rows[1]]


def test_run_folder_and_resume_of_finished_run(tmp_path):
    _train(tmp_path, "done", epochs=2)
    d = tmp_path / "done"
    assert (d / "args.yaml").exists() and (d / "weights" / "last.pt").exists() and (d / "weights" / "best.pt").exists()
    assert not list((d / "weights").glob("*.tmp*"))
    ck = load_checkpoint(d / "weights" / "last.pt")
    assert ck["epoch"] == 1 and ck["epochs"] == 2
    # 24 images / batch 8 = 3 iterations per epoch; 2 epochs; accumulate 16/8 = 2 → steps at i=1, i=2 (last).
    assert ck["train"]["scheduler"]["last_epoch"] == 6
    assert ck["train"]["ema"]["updates"] == 4
    with pytest.raises(GradpathError, match="already finished all 2 epochs") as e:
        _train(tmp_path, "done", epochs=2, resume=ck)
    assert "\n" not in str(e.value)


def test_lr_factor_hand_values():
    lin = LRFactor(total_iters=100, warmup_iters=10, lrf=0.1, kind="linear", start=0.0)
    assert lin(0) == 0.0
    assert lin(5) == pytest.approx(0.5 * (1 - 0.05 * 0.9))      # halfway up to the scheduled 0.955
    assert lin(10) == pytest.approx(1 - 0.1 * 0.9)
    assert lin(100) == pytest.approx(0.1)
    cos = LRFactor(total_iters=100, warmup_iters=0, lrf=0.1, kind="cosine")
    assert cos(0) == pytest.approx(1.0) and cos(50) == pytest.approx(0.55) and cos(100) == pytest.approx(0.1)
    step = LRFactor(total_iters=90, warmup_iters=0, lrf=0.01, kind="step")
    assert [step(i) for i in (0, 29, 30, 59, 60, 90)] == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
    bias = LRFactor(total_iters=100, warmup_iters=10, lrf=0.1, kind="linear", start=10.0)  # warmup_bias_lr/lr0
    assert bias(0) == 10.0 and bias(5) == pytest.approx(10 + (0.955 - 10) * 0.5)


def test_param_groups_decay_only_conv_and_linear_weights():
    m = toy_model()
    groups = {g["group"]: g for g in param_groups(m, 0.01)}
    assert [p.shape for p in groups["decay"]["params"]] == [torch.Size([8, 3, 3, 3]), torch.Size([3, 8])]
    assert [p.shape for p in groups["no_decay"]["params"]] == [torch.Size([8])]  # BN weight
    assert [p.shape for p in groups["bias"]["params"]] == [torch.Size([8]), torch.Size([3])]  # BN bias, fc bias
    assert groups["no_decay"]["weight_decay"] == 0 and groups["decay"]["weight_decay"] == 0.01
    opt = build_optimizer(m, "adamw", lr0=0.002, momentum=0.9, weight_decay=0.01)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["betas"] == (0.9, 0.999)
    with pytest.raises(GradpathError, match="unknown optimizer 'adam'"):
        build_optimizer(m, "adam")


def test_ema_hand_computed():
    lin = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    ema = ModelEMA(lin, decay=0.5, tau=1.0)
    with torch.no_grad():
        lin.weight.fill_(3.0)
    ema.update(lin)  # d = 0.5 * (1 - e^-1) = 0.31606; 1*d + 3*(1-d)
    d = 0.5 * (1 - math.exp(-1))
    assert ema.ema.weight.item() == pytest.approx(d + 3 * (1 - d))
    assert not ema.ema.weight.requires_grad


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    tr, _ = _train(tmp_path, "atomic", epochs=2)
    wdir = tmp_path / "atomic" / "weights"
    good = (wdir / "last.pt").read_bytes()
    import gradpath.engine.checkpoint as ckmod

    def dying_save(obj, f, *args, **kwargs):  # half a file written, then the disk fills up
        f.write(b"PK\x03\x04partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(ckmod.torch, "save", dying_save)
    with pytest.raises(OSError, match="No space left"):
        tr._save(5, is_best=True)
    monkeypatch.undo()
    assert (wdir / "last.pt").read_bytes() == good  # the previous checkpoint survives, intact and loadable
    assert load_checkpoint(wdir / "last.pt")["epoch"] == 1
    assert sorted(p.name for p in wdir.iterdir()) == ["best.pt", "last.pt"]  # no temp file left behind


def test_ema_recent_share_hand_values():
    from gradpath.engine.ema import recent_share, suggested_decay
    assert recent_share(0.5, 0.0, 4, 2) == pytest.approx(0.75)          # 1 - 0.5 * 0.5
    tau = 1 / math.log(2)                                                # ramp 1 - 2^-n: 0.5, 0.75
    assert recent_share(1.0, tau, 2, 2) == pytest.approx(1 - 0.5 * 0.75)
    # The reproduce recipe's first 30-epoch runs (75 updates an epoch, YOLOv5's 0.9999, tau 100): their second
    # half (updates 1126..2250) made up about 1 - 0.9999^1125 = 0.106 of the evaluated EMA (the ramp adds ~0.001).
    keep = math.prod(0.9999 * (1 - math.exp(-n / 100)) for n in range(1126, 2251))
    assert recent_share(0.9999, 100.0, 2250, 1125) == pytest.approx(1 - keep, abs=1e-12)
    assert recent_share(0.9999, 100.0, 2250, 1125) == pytest.approx(1 - 0.9999 ** 1125, abs=2e-3)
    assert 0.10 < recent_share(0.9999, 100.0, 2250, 1125) < 0.11
    assert recent_share(0.997, 100.0, 2250, 1125) > 0.96
    assert (suggested_decay(2250), suggested_decay(550_000), suggested_decay(10)) == (0.9964, 0.9999, 0.9)


def test_trainer_warns_when_the_ema_would_be_made_of_early_weights(tmp_path):
    from gradpath.errors import GradpathWarning
    with pytest.warns(GradpathWarning, match=r"ema_decay 0.9999 averages over ~10000 updates but the run has "):
        # 5 optimizer steps with the decay at full strength from the start (tau 1)
        Trainer(toy_model(), ToyTask(), _cfg(tmp_path, "slow", ema_tau=1.0), tmp_path / "slow", log=lambda m: None)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradpathWarning)
        Trainer(toy_model(), ToyTask(), _cfg(tmp_path, "fit", ema_tau=1.0, ema_decay=0.5), tmp_path / "fit", log=lambda m: None)
        Trainer(toy_model(), ToyTask(), _cfg(tmp_path, "none", ema_tau=1.0, ema=False), tmp_path / "none", log=lambda m: None)
