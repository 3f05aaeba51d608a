"""Registry-driven zoo tests: every registered model builds, runs forward/backward on CPU, fuses to an equal
deploy model, and the paper models reproduce their published FLOPs/params
(docs/counting.md, docs/reconstructions.md)."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from gradpath.cli import main as cli_main
from gradpath.experiments.zoo import ROWS, measure
from gradpath.models import create_model, get_entry, list_models
from gradpath.models.detect import Segment
from gradpath.models.yolor import elan_module
from gradpath.nn import Residual, fuse_model
from gradpath.profiling import count_params

ALL = list_models()
_MEASURED: dict[str, dict] = {}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny convs on a shared 2-core box: intra-op threads only add contention (10-100x slower under load)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _measure(name: str) -> dict:
    if name not in _MEASURED:
        _MEASURED[name] = measure(name)
    return _MEASURED[name]


def _small(name: str) -> tuple[torch.nn.Module, int]:
    """The model at a CPU-friendly size: detectors at width 0.125 / depth 0.34 / 3 classes on 64 px."""
    entry = get_entry(name)
    fields = {f.name for f in dataclasses.fields(entry.config)}
    kw = {}
    if "width" in fields:
        kw.update(width=0.125, depth=0.34)
    if "num_classes" in fields:
        kw["num_classes"] = 3
    model = create_model(name, **kw)
    size = 64
    return model, size


def _tensors(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    assert isinstance(out, (tuple, list)), f"output contains a {type(out).__name__}"
    return [t for o in out for t in _tensors(o)]


# Stop-gradient variants detach the identity (9a) or the block input (9b) of residual blocks; neither cuts a
# parameter off the loss (the other route still reaches it), so the expected no-gradient set is empty for every
# model. A variant that detached a block's *output* would show up here.
EXPECTED_NO_GRAD: dict[str, set[str]] = {}


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_fuse(name: str) -> None:
    torch.manual_seed(0)
    model, size = _small(name)
    x = torch.rand(1, 3, size, size)
    model.train()
    out = model(x)
    if get_entry(name).task == "segment":
        _check_contract(model, out, size)
    loss = sum(t.float().square().mean() for t in _tensors(out))
    loss.backward()
    no_grad = {n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()}
    assert no_grad == EXPECTED_NO_GRAD.get(name, set())
    model.eval()
    with torch.no_grad():
        ref = _tensors(model(x))
        fused = fuse_model(copy.deepcopy(model))
        dep_out = fused(x)
        dep = _tensors(dep_out)
    assert isinstance(dep_out, (torch.Tensor, tuple))
    assert len(dep) == len(ref)
    for a, b in zip(ref, dep):
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    if get_entry(name).task == "segment":
        pred, proto = dep_out
        assert tuple(pred.shape) == (1, 3 * sum((size // k) ** 2 for k in (8, 16, 32)), 40)
        assert (pred[..., 4:8] >= 0).all() and (pred[..., 4:8] <= 1).all()
        assert tuple(proto.shape) == (1, 32, size // 4, size // 4)


def _check_contract(model: torch.nn.Module, out, s: int) -> None:
    """Contract A: attributes and the training-mode (feats, proto) shapes."""
    head = model.head
    assert isinstance(head, Segment) and model.num_classes == 3 and model.in_chans == 3
    assert model.stride.tolist() == [8.0, 16.0, 32.0] and model.default_imgsz == 640
    assert (head.na, head.nl, head.nm, head.no) == (3, 3, 32, 5 + 3 + 32)
    assert head.anchors.shape == (3, 3, 2)
    feats, proto = out
    assert [tuple(f.shape) for f in feats] == [(1, 3, s // k, s // k, 40) for k in (8, 16, 32)]
    assert tuple(proto.shape) == (1, 32, s // 4, s // 4)


def test_segment_decode_and_bias_init() -> None:
    """Zero conv → σ = 0.5: xy = (grid + 0.5)·stride, wh = anchor (hand-computed); YOLOv5 bias prior."""
    import math

    head = Segment(2, ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326)),
                   (8, 8, 8), nm=4, npr=8)
    b = head.m[0].bias.view(3, 11)
    assert b[0, 4].item() == pytest.approx(math.log(8 / 80 ** 2), abs=8 ** -0.5)  # ±1/sqrt(fan_in) init
    assert b[1, 5].item() == pytest.approx(math.log(0.6 / 1.01), abs=8 ** -0.5)
    for conv in head.m:
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    head.eval()
    xs = [torch.rand(1, 8, 64 // s, 64 // s) for s in (8, 16, 32)]
    with torch.no_grad():
        pred, proto = head(xs)
    assert pred.shape == (1, 3 * (64 + 16 + 4), 11) and proto.shape == (1, 4, 16, 16)
    # level 0, anchor 1, cell (y=2, x=5): index 1·64 + 2·8 + 5
    row = pred[0, 64 + 2 * 8 + 5]
    assert row[:4].tolist() == [5.5 * 8, 2.5 * 8, 16.0, 30.0]
    assert row[4:7].tolist() == [0.5, 0.5, 0.5] and row[7:].tolist() == [0.0] * 4
    # level 2 (stride 32), anchor 2, cell (1, 0)
    row = pred[0, 3 * 64 + 3 * 16 + 2 * 4 + 1 * 2 + 0]
    assert row[:4].tolist() == [0.5 * 32, 1.5 * 32, 373.0, 326.0]


PAPER_MODELS = [n for n in ALL if get_entry(n).paper is not None]


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_paper_counts(name: str) -> None:
    """Must-match entries reproduce the paper's FLOPs and params within 0.5% at the paper's size."""
    ref = get_entry(name).paper
    m = _measure(name)
    assert m["imgsz"] == ref.imgsz
    if not ref.must_match:
        assert ref.note, "a reconstruction must say how it differs"
        return
    assert abs(m["gflops"] - ref.gflops) / ref.gflops <= 0.005
    if ref.params is not None:
        assert abs(m["params_m"] - ref.params) / ref.params <= 0.005


# Exact counts (fused params; darknet weights for Table 2) of the layouts in docs/reconstructions.md.
EXACT_PARAMS = {
    "yolov5l-seg": 47_894_397, "yolov5x-seg": 88_774_445, "yolor-v3": 64_335_194, "yolor-csp": 54_252_314,
    "yolor-elan": 38_268_602, "yolor-elan-11": 34_516_282, "yolor-elan-22": 48_408_506,
}
EXACT_WEIGHTS = {"darknet53": 41_573_216, "csp-darknet53": 27_605_856, "resnet50": 22_734_016,
                 "csp-resnet50": 21_566_656, "resnext50": 22_190_784, "csp-resnext50": 20_499_136}


@pytest.mark.parametrize("name", sorted(EXACT_PARAMS) + sorted(EXACT_WEIGHTS))
def test_exact_public_counts(name: str) -> None:
    expected = EXACT_PARAMS.get(name) or EXACT_WEIGHTS[name]
    assert round(_measure(name)["params_m"] * 1e6) == expected


def test_yolor_elan_flops_and_known_params_discrepancy() -> None:
    """{2,1}s hits Table 7/8's 143.2G; Table 8's 34.5M is the {1,1}s count, not ours."""
    assert round(_measure("yolor-elan")["gflops"], 1) == 143.2
    assert round(_measure("yolor-elan-11")["params_m"], 1) == 34.5
    assert round(_measure("yolor-elan")["params_m"], 1) == 38.3


def test_no_spp_yolov3_is_the_other_candidate() -> None:
    """docs/reconstructions.md#yolor-v3: without SPP, 194.61G / 63,286,106 params."""
    m = measure("yolor-v3", spp=False)
    assert round(m["gflops"], 2) == 194.61 and round(m["params_m"] * 1e6) == 63_286_106


def _structure(model: torch.nn.Module) -> list[tuple]:
    return [(n, type(m).__name__, tuple((k, tuple(p.shape)) for k, p in m.named_parameters(recurse=False)))
            for n, m in model.named_modules()]


@pytest.mark.parametrize("fusion", ["fusion", "first", "last", "none"])
def test_strategy_is_a_parameter_of_one_topology(fusion: str) -> None:
    with torch.device("meta"):
        a = create_model("yolor-v3", strategy="csp", fusion=fusion)
        b = create_model("yolor-csp", fusion=fusion)
    assert a.gradpath_config == b.gradpath_config
    assert _structure(a) == _structure(b)
    assert count_params(a) == count_params(b)
    assert measure("yolor-v3", strategy="csp", fusion=fusion)["gflops"] == measure("yolor-csp", fusion=fusion)["gflops"]


def test_prn_and_stop_gradient_wiring() -> None:
    """PRN masks half the channels in all 23 backbone residual blocks and changes no count (Table 5); the
    stop-gradient variants set it on all 23 residual blocks of YOLOR-CSP (1 + 2 + 8 + 8 + 4)."""
    with torch.device("meta"):
        prn = create_model("yolor-prn")
        v3 = create_model("yolor-v3")
        sg = create_model("yolor-csp", stop_gradient="block")
    masked = [m for m in prn.modules() if isinstance(m, Residual) and m.shortcut == "masked"]
    assert len(masked) == 23 and all(m.mask == (0, m.out_channels // 2) for m in masked)
    assert count_params(prn) == count_params(v3)
    assert _measure("yolor-prn")["gflops"] == _measure("yolor-v3")["gflops"]
    assert sum(isinstance(m, Residual) and m.stop_gradient == "block" for m in sg.modules()) == 23


def test_vovnet_plans_differ_only_in_the_backbone_stages() -> None:
    """Table 4: the plain deep VoVNet has a 1×1 transition after each of its 1+3+9+3 OSA modules (5 chained 3×3
    convs each); the ELAN plan has one transition per stage; "+ CSP" lets the cross entry bypass it. The stem,
    neck and head are the same modules in all three."""
    from gradpath.nn import ELAN, OSABlock

    with torch.device("meta"):
        plain, elan, csp = (create_model(n) for n in ("vovnet99", "vovnet99-elan", "vovnet99-elan-csp"))
    stages = ("elan2", "elan3", "elan4", "elan5")
    osa = [[m for m in getattr(plain.body, s) if isinstance(m, OSABlock)] for s in stages]
    assert [len(o) for o in osa] == [1, 3, 9, 3]
    assert all(len(b.convs) == 5 and b.transition.conv.kernel_size == (1, 1) for o in osa for b in o)
    assert [getattr(plain.body, s).out_channels for s in stages] == [256, 512, 1024, 1024]
    for model, bypass in ((elan, False), (csp, True)):
        blocks = [getattr(model.body, s) for s in stages]
        assert all(isinstance(b, ELAN) and b.cross_bypass == bypass for b in blocks)
        assert [len(b.blocks) for b in blocks] == [1, 3, 9, 3]
    prefixes = tuple(f"body.{s}." for s in stages)
    rest = [(n, tuple(p.shape)) for n, p in plain.named_parameters() if not n.startswith(prefixes)]
    assert rest == [(n, tuple(p.shape)) for n, p in elan.named_parameters() if not n.startswith(prefixes)]
    with pytest.raises(Exception, match="csp=True needs strategy='elan'"):
        create_model("vovnet99", csp=True)


def test_invalid_combinations_are_user_errors() -> None:
    from gradpath.errors import GradpathError

    with pytest.raises(GradpathError, match="fusion"):
        create_model("yolor-v3", fusion="first")
    with pytest.raises(GradpathError, match="stop_gradient"):
        create_model("yolor-elan", stop_gradient="identity")
    with pytest.raises(GradpathError, match="elan_stack"):
        create_model("yolor-elan", elan_stack=(3, 1))


def _module_counts(module: torch.nn.Module, c: int, hw: int) -> tuple[float, int]:
    meta = copy.deepcopy(module).to("meta").eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        meta(torch.zeros(1, c, hw, hw, device="meta"))
    return counter.get_total_flops() / 1e9, count_params(module)["params"]


@pytest.mark.parametrize("cin,hw,e,out,s,gflops,params", [
    (128, 160, 64, 256, 1, 6.554, 128_512),
    (128, 160, 64, 256, 2, 11.744, 230_016),
    (1024, 20, 256, 1024, 1, 1.848, 2_312_192),
    (1024, 20, 256, 1024, 2, 3.146, 3_934_720),
    (512, 40, 256, 256, 1, 4.037, 1_262_848),
    (512, 40, 256, 256, 2, 9.227, 2_885_376),
])
def test_elan_single_module_figures(cin, hw, e, out, s, gflops, params) -> None:
    """Single ELAN-{s} modules of yolor-elan (docs/reconstructions.md#elan-stack; GFLOPs at 640 input, fused
    params)."""
    g, p = _module_counts(elan_module(cin, e, out, s), cin, hw)
    assert round(g, 3) == gflops and p == params


def test_every_table_row_has_a_registered_model_and_passes(capsys) -> None:
    assert {r.table for r in ROWS} == {"2", "3", "4", "5", "6", "7", "8"}
    assert all(r.model in ALL for r in ROWS)
    rc = cli_main(["reproduce", "flops", "--table", "6", "--json"])
    import json

    rows = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(rows) == 5 and {r["status"] for r in rows} == {"ok"}


def test_reproduce_unknown_table_is_a_user_error(capsys) -> None:
    assert cli_main(["reproduce", "flops", "--table", "9"]) == 2
    assert "tables with rows: 2, 3, 4, 5, 6, 7, 8" in capsys.readouterr().err


def test_eval_model_traces_to_torchscript() -> None:
    """Deploy form is tensors only, so tracing works and reproduces the eager output."""
    model, s = _small("yolor-elan")
    model = fuse_model(model)
    x = torch.rand(1, 3, s, s)
    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
        a, b = model(x), traced(x)
    torch.testing.assert_close(b[0], a[0])
    torch.testing.assert_close(b[1], a[1])
