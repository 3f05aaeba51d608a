"""``gradpath.create_model(name, weights=...)``: a saved checkpoint loaded into the network it was saved from."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import gradpath
from gradpath.engine.checkpoint import make_checkpoint, save_checkpoint
from gradpath.errors import GradpathError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = gradpath.create_model("yolor-v3", width=0.125, depth=0.34, num_classes=3).eval()
    with torch.no_grad():  # weights that differ from a fresh init of the same seed
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("ck") / "best.pt"
    save_checkpoint(path, make_checkpoint(model, task="segment", meta={"imgsz": 64}))
    return model, path


def _outputs(model, x):
    with torch.no_grad():
        out = model.eval()(x)
    return [t for t in (out if isinstance(out, (list, tuple)) else [out]) if torch.is_tensor(t)]


def test_weights_load_with_the_stored_config(saved):
    ref, path = saved
    model = gradpath.create_model("yolor-v3", weights=path)  # width/depth/classes come from the checkpoint
    assert model.gradpath_config.width == 0.125 and model.gradpath_config.num_classes == 3
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for a, b in zip(_outputs(model, x), _outputs(ref, x)):
        assert torch.equal(a, b)


def test_an_override_that_keeps_the_shapes_applies(saved):
    """The same trained weights in the stop-gradient variant (Table 3's ablation): same tensors, other graph."""
    ref, path = saved
    model = gradpath.create_model("yolor-v3", weights=str(path), stop_gradient="identity")
    assert model.gradpath_config.stop_gradient == "identity" and model.gradpath_config.width == 0.125
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for a, b in zip(_outputs(model, x), _outputs(ref, x)):  # a stop-gradient changes no forward value
        assert torch.equal(a, b)


@pytest.mark.parametrize("name, overrides, match", [
    ("yolor-csp", {}, "is a checkpoint of model 'yolor-v3', not 'yolor-csp'"),
    ("yolor-v3", {"num_classes": 5}, "its weights do not fit model 'yolor-v3'.*shape mismatches"),
])
def test_a_checkpoint_that_does_not_fit_is_a_one_line_error(saved, name, overrides, match):
    _, path = saved
    with pytest.raises(GradpathError, match=match) as e:
        gradpath.create_model(name, weights=path, **overrides)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(GradpathError, match=f"checkpoint {tmp_path / 'nope.pt'} does not exist"):
        gradpath.create_model("yolor-v3", weights=tmp_path / "nope.pt")


def test_without_weights_it_is_the_registry_builder_and_import_stays_light():
    a = gradpath.create_model("yolor-v3", width=0.125, depth=0.34)
    assert a.gradpath_name == "yolor-v3" and a.gradpath_config.width == 0.125
    code = "import sys, gradpath; print('gradpath.engine.checkpoint' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"
