"""`gradpath export` in every format, through the CLI, on tiny checkpoints of both tasks.

safetensors: the file holds the trained state dict and a string header; the header alone rebuilds the network with
``create_model`` and the rebuilt network gives bit-identical outputs. pt2: ``torch.export.load`` runs the program
and it matches PyTorch. ONNX: ``--opset`` is what the file declares, and a missing ``export`` extra is a one-line
error. A broken export (a perturbed deploy form, corrupted weights) fails with exit 2 instead of writing a silently
wrong file.
"""
from __future__ import annotations

import json
import sys

import pytest
import safetensors
import safetensors.torch
import torch

import gradpath.deploy
from gradpath.cli import main
from gradpath.deploy import read_safetensors
from gradpath.engine.checkpoint import make_checkpoint, model_config_dict, model_from_checkpoint, save_checkpoint
from gradpath.errors import GradpathError
from gradpath.models import create_model
from gradpath.nn import fuse_model

NAMES = ["circle", "square", "triangle"]
SEG = {"name": "yolor-elan", "task": "segment", "imgsz": 64,
       "overrides": {"width": 0.0625, "depth": 0.34, "num_classes": 3}}
CLS = {"name": "tiny-res", "task": "classify", "imgsz": 32, "overrides": {"num_classes": 3}}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: on a shared 2-core machine intra-op threads only add contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _checkpoint(root, spec) -> tuple[torch.nn.Module, str]:
    """A checkpoint of ``spec``'s model whose BatchNorms hold non-trivial statistics, so that folding them (the
    deploy form) and storing them (safetensors) both change the numbers if done wrong."""
    torch.manual_seed(0)
    model = create_model(spec["name"], **spec["overrides"])
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    path = root / f"{spec['task']}.pt"
    save_checkpoint(path, make_checkpoint(model, task=spec["task"], meta={"names": NAMES, "imgsz": spec["imgsz"]},
                                          overrides=spec["overrides"]))
    return model.eval(), str(path)


@pytest.fixture(scope="module")
def seg(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("seg"), SEG)


@pytest.fixture(scope="module")
def cls(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("cls"), CLS)


def _export(capsys, *argv: str) -> dict:
    capsys.readouterr()
    assert main(["export", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _fails(capsys, *argv: str) -> str:
    """Runs an export that must fail as a user error: exit 2 and one line on stderr, which is returned."""
    capsys.readouterr()
    assert main(["export", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gradpath export: error:") and "\n" not in err
    return err


def _outputs(model, x) -> list[torch.Tensor]:
    with torch.no_grad():
        y = model(x)
    return list(y) if isinstance(y, (tuple, list)) else [y]


# ---------------------------------------------------------------------------------------------------- safetensors
@pytest.mark.parametrize("which", ["seg", "cls"])
def test_safetensors_round_trip(which, request, tmp_path, capsys):
    model, weights = request.getfixturevalue(which)
    spec = SEG if which == "seg" else CLS
    out = tmp_path / "m.safetensors"
    res = _export(capsys, "--weights", weights, "--format", "safetensors", "--out", str(out))
    # the rebuilt network is the trained one, so parity is exact, not merely within 1e-3
    assert res["ok"] and res["format"] == "safetensors" and res["max_abs_diff"] == 0.0

    # what any safetensors user sees: tensors and a string header, nothing to execute
    tensors = safetensors.torch.load_file(str(out))
    with safetensors.safe_open(str(out), framework="pt") as f:
        header = f.metadata()
    assert all(isinstance(v, str) for v in header.values())
    assert header["format"] == "gradpath-safetensors" and header["format_version"] == "1"
    assert header["task"] == spec["task"] and header["model"] == spec["name"]
    assert json.loads(header["names"]) == NAMES and json.loads(header["imgsz"]) == spec["imgsz"]
    config = json.loads(header["config"])
    assert config == json.loads(json.dumps(model_config_dict(model)))  # the resolved config, tuples as lists
    assert config["num_classes"] == 3 and config.get("width", 0.0625) == 0.0625
    # the trained state (BatchNorm not folded): exactly the model's state dict, buffers included
    state = model.state_dict()
    assert sorted(tensors) == sorted(state)
    assert all(torch.equal(tensors[k], v) for k, v in state.items())

    # the header alone rebuilds the network; outputs are bit-identical on a fresh input
    rebuilt = create_model(header["model"], **{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
    rebuilt.load_state_dict(tensors)
    x = torch.rand(1, 3, spec["imgsz"], spec["imgsz"], generator=torch.Generator().manual_seed(7))
    for a, b in zip(_outputs(rebuilt.eval(), x), _outputs(model, x)):
        assert torch.equal(a, b)

    # and the checkpoint reader path: read_safetensors → model_from_checkpoint
    again, ck = model_from_checkpoint(read_safetensors(out))
    assert ck["task"] == spec["task"] and ck["meta"] == {"names": NAMES, "imgsz": spec["imgsz"]}
    for a, b in zip(_outputs(again.eval(), x), _outputs(model, x)):
        assert torch.equal(a, b)


def test_read_safetensors_refuses_foreign_and_damaged_files(tmp_path):
    plain = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(GradpathError, match=r"plain\.safetensors was not written by `gradpath export"):
        read_safetensors(plain)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x07\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(GradpathError, match=r"garbage\.safetensors cannot be read as safetensors"):
        read_safetensors(garbage)
    broken = tmp_path / "broken.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(broken), metadata={
        "format": "gradpath-safetensors", "format_version": "1", "task": "classify", "model": "tiny-res",
        "config": "{not json"})
    with pytest.raises(GradpathError, match=r"broken\.safetensors: damaged gradpath header"):
        read_safetensors(broken)
    with pytest.raises(GradpathError, match="does not exist"):
        read_safetensors(tmp_path / "absent.safetensors")


def test_safetensors_with_corrupted_weights_fails(cls, tmp_path, monkeypatch, capsys):
    """A writer that stores other numbers than the model's (here: one tensor + 0.5) is caught by the rebuild."""
    real_save = safetensors.torch.save_file

    def corrupting_save(tensors, filename, metadata=None):
        key = next(k for k, v in tensors.items() if k.endswith("weight") and v.dim() == 4)
        real_save({**tensors, key: tensors[key] + 0.5}, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", corrupting_save)
    out = tmp_path / "bad.safetensors"
    err = _fails(capsys, "--weights", cls[1], "--format", "safetensors", "--out", str(out))
    assert "safetensors export" in err and "differs from PyTorch" in err and str(out) in err


# ---------------------------------------------------------------------------------------------------- pt2
@pytest.mark.parametrize("which", ["seg", "cls"])
def test_pt2_export_loads_and_matches(which, request, capsys):
    model, weights = request.getfixturevalue(which)
    spec = SEG if which == "seg" else CLS
    res = _export(capsys, "--weights", weights, "--format", "pt2")
    out = weights[:-len(".pt")] + ".pt2"  # the default path: next to the weights
    assert res["ok"] and res["path"] == out and res["max_rel_diff"] <= 1e-3
    extra = {"config.json": ""}
    program = torch.export.load(out, extra_files=extra)
    meta = json.loads(extra["config.json"])
    assert meta["task"] == spec["task"] and json.loads(meta["names"]) == NAMES
    x = torch.rand(1, 3, spec["imgsz"], spec["imgsz"], generator=torch.Generator().manual_seed(7))
    got, ref = _outputs(program.module(), x), _outputs(model, x)
    if which == "seg":
        # 3 anchors × (8² + 4² + 2²) cells at strides 8/16/32; 5 box/obj + 3 classes + 32 mask coefficients
        assert [tuple(t.shape) for t in got] == [(1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 5 + 3 + 32), (1, 32, 16, 16)]
    else:
        assert [tuple(t.shape) for t in got] == [(1, 3)]
    assert gradpath.deploy.parity(got, ref)["ok"]  # a fresh input, not the one the export checked


def test_help_marks_torchscript_deprecated(capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "torchscript: deprecated by PyTorch 2.14, prefer pt2" in text
    assert "{onnx,pt2,torchscript,safetensors}" in text


# ---------------------------------------------------------------------------------------------------- onnx
def test_onnx_opset_is_the_one_asked_for(seg, tmp_path, capsys):
    import onnx  # optional dependency (the export extra)

    out = tmp_path / "m.onnx"
    res = _export(capsys, "--weights", seg[1], "--format", "onnx", "--opset", "13", "--out", str(out))
    assert res["ok"]
    proto = onnx.load(str(out))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [13]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["model"] == "yolor-elan" and json.loads(meta["names"]) == NAMES
    assert json.loads(meta["config"])["width"] == 0.0625


@pytest.mark.parametrize("missing", ["onnx", "onnxruntime"])
def test_onnx_without_the_export_extra(cls, tmp_path, monkeypatch, capsys, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # `import onnx` now raises ImportError
    out = tmp_path / "m.onnx"
    err = _fails(capsys, "--weights", cls[1], "--format", "onnx", "--out", str(out))
    assert "needs the onnx and onnxruntime packages" in err and "pip install 'gradpath[export]'" in err
    assert not out.exists()


def test_opset_errors(cls, tmp_path, capsys):
    assert "ONNX opset 99 is not supported; choose 9..23" in _fails(
        capsys, "--weights", cls[1], "--format", "onnx", "--opset", "99", "--out", str(tmp_path / "m.onnx"))
    assert "--opset applies to --format onnx only, not pt2" in _fails(
        capsys, "--weights", cls[1], "--format", "pt2", "--opset", "13", "--out", str(tmp_path / "m.pt2"))
    assert not list(tmp_path.iterdir())


def test_out_may_not_overwrite_the_weights(cls, capsys):
    assert "is the weights file itself" in _fails(capsys, "--weights", cls[1], "--format", "torchscript",
                                                  "--out", cls[1])


# ---------------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_broken_deploy_form_fails_the_export(cls, tmp_path, monkeypatch, capsys, fmt):
    """A deploy form whose logits are off by 0.01 (a wrong fold, say) is caught by the parity check."""
    def broken_fuse(model):
        fuse_model(model)
        fc = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
        fc.bias.data += 0.01
        return model

    monkeypatch.setattr(gradpath.deploy, "fuse_model", broken_fuse)
    out = tmp_path / f"bad.{fmt}"
    err = _fails(capsys, "--weights", cls[1], "--format", fmt, "--out", str(out))
    assert f"{fmt} export {out} differs from PyTorch" in err and "> 0.001" in err
