"""Checkpoints (atomic write, rebuild by name, clear refusal of foreign weights) and ONNX/TorchScript export parity."""
from __future__ import annotations

import json
import os

import pytest
import torch

from gradpath.cli import main
from gradpath.deploy import export_model, parity
from gradpath.engine.checkpoint import (
    load_checkpoint,
    make_checkpoint,
    model_config_dict,
    model_from_checkpoint,
    save_checkpoint,
)
from gradpath.errors import GradpathError
from gradpath.models import create_model

SMALL = {"num_classes": 3, "width": 0.25, "depth": 0.34}


@pytest.fixture(scope="module")
def csp():
    torch.manual_seed(0)
    return create_model("yolor-csp", **SMALL).eval()


def test_save_is_atomic(tmp_path, monkeypatch, csp):
    path = tmp_path / "w" / "last.pt"
    save_checkpoint(path, make_checkpoint(csp, task="segment", epoch=1))
    assert load_checkpoint(path)["epoch"] == 1

    real_save = torch.save

    def dying_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # the process is killed mid-write

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, make_checkpoint(csp, task="segment", epoch=2))
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(path)["epoch"] == 1  # the previous file is intact
    assert os.listdir(path.parent) == ["last.pt"]  # and no temp file is left behind


def test_load_errors(tmp_path):
    with pytest.raises(GradpathError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(GradpathError, match="is a folder"):
        load_checkpoint(tmp_path)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(GradpathError, match="cannot be read"):
        load_checkpoint(bad)
    lst = tmp_path / "list.pt"
    torch.save([1, 2], lst)
    with pytest.raises(GradpathError, match="not a gradpath checkpoint"):
        load_checkpoint(lst)
    torch.save({"epoch": 3}, lst)
    with pytest.raises(GradpathError, match="no model name"):
        model_from_checkpoint(lst)


def test_round_trip_and_other_models_checkpoint(tmp_path, csp):
    path = tmp_path / "best.pt"
    save_checkpoint(path, make_checkpoint(csp, task="segment", meta={"names": ["a", "b", "c"], "imgsz": 64},
                                          epoch=4))
    model, ck = model_from_checkpoint(path)
    assert model.gradpath_name == "yolor-csp" and model.gradpath_config == csp.gradpath_config
    assert ck["meta"] == {"names": ["a", "b", "c"], "imgsz": 64} and ck["epoch"] == 4 and ck["task"] == "segment"
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x)[0], csp(x)[0])

    with pytest.raises(GradpathError, match="checkpoint of model 'yolor-csp', not 'yolor-elan'"):
        model_from_checkpoint(path, expect_model="yolor-elan")
    # weights of yolor-csp stored under another model's name: named mismatch, not a PyTorch traceback
    ck = make_checkpoint(create_model("yolor-elan", **SMALL), task="segment")
    ck["weights"] = csp.state_dict()
    save_checkpoint(path, ck)
    with pytest.raises(GradpathError, match=r"do not fit model 'yolor-elan'.*Was it saved from another model"):
        model_from_checkpoint(path)
    # a changed config (another class count) is caught the same way
    ck = make_checkpoint(csp, task="segment")
    ck["model"]["config"]["num_classes"] = 5
    save_checkpoint(path, ck)
    with pytest.raises(GradpathError, match="shape mismatches"):
        model_from_checkpoint(path)


def test_old_trainer_layout_loads_its_ema(tmp_path, csp):
    """A checkpoint in gradpath 0.1's trainer layout still loads, with the EMA weights (what was evaluated)."""
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in csp.state_dict().items()}
    ck = {"epoch": 0, "model": csp.state_dict(), "ema": {"ema": ema, "updates": 3},
          "run_info": {"task": "segment", "model": "yolor-csp", "model_overrides": SMALL,
                       "model_config": model_config_dict(csp), "names": ["a", "b", "c"]},
          "train_args": {"imgsz": 96}}
    save_checkpoint(tmp_path / "last.pt", ck)
    model, ck2 = model_from_checkpoint(tmp_path / "last.pt")
    key = next(k for k, v in ema.items() if v.is_floating_point())
    torch.testing.assert_close(model.state_dict()[key], ema[key])
    assert ck2["meta"] == {"names": ["a", "b", "c"], "imgsz": 96}


def test_parity_rule():
    ref = [torch.tensor([100.0, 0.5])]
    assert parity([torch.tensor([100.09, 0.5009])], ref)["ok"]  # 9e-4 relative, 9e-4 absolute
    r = parity([torch.tensor([100.2, 0.5])], ref)
    assert not r["ok"] and r["max_abs_diff"] == pytest.approx(0.2, rel=1e-4) and r["max_rel_diff"] == pytest.approx(2e-3, rel=1e-3)
    assert not parity([torch.tensor([100.0, 0.502])], ref)["ok"]
    assert not parity([torch.zeros(3)], ref)["ok"]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_parity(tmp_path, csp, fmt):
    out = tmp_path / f"m.{fmt}"
    res = export_model(csp, fmt, out, imgsz=64, metadata={"names": ["a", "b", "c"], "stride": [8, 16, 32]})
    assert res["ok"] and res["max_rel_diff"] <= 1e-3 and out.is_file()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = csp(x)
    if fmt == "onnx":
        import onnx
        import onnxruntime as ort

        meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        assert json.loads(meta["names"]) == ["a", "b", "c"]
        sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        assert [o.name for o in sess.get_outputs()] == ["pred", "proto"]
        got = [torch.from_numpy(a) for a in sess.run(None, {"images": x.numpy()})]
    else:
        got = list(torch.jit.load(str(out))(x))
    assert got[0].shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 5 + 3 + 32) and got[1].shape == (1, 32, 16, 16)
    assert parity(got, list(ref))["ok"]  # a fresh input, not the one the export checked
    assert not any(p.requires_grad is False for p in csp.parameters())  # the source model is left untouched


def test_export_rejects_bad_args(tmp_path, csp, capsys):
    with pytest.raises(GradpathError, match="unknown export format"):
        export_model(csp, "tflite", tmp_path / "m", imgsz=64)
    w = tmp_path / "w.pt"
    save_checkpoint(w, make_checkpoint(csp, task="segment", meta={"names": ["a", "b", "c"], "imgsz": 64}))
    assert main(["export", "--weights", str(w), "--format", "onnx", "--imgsz", "50"]) == 2
    err = capsys.readouterr().err
    assert "multiple of 32" in err and "\n" not in err.strip()
    assert not (tmp_path / "w.onnx").exists()
