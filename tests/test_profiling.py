"""Profiler counts against hand-computed values; CSP FLOPs relations of paper §3.2."""
import pytest
from torch import nn

import gradpath
from gradpath.nn import ConvBNAct, CSPStage, res_block
from gradpath.profiling import activation_memory, count_flops, count_params


def test_conv_flops_hand_computed():
    # 3x3 conv 3->8 at 32x32, stride 1: MACs = Cout*H*W*Cin*k*k
    m = nn.Sequential(ConvBNAct(3, 8, 3))
    assert count_flops(m, 32) == 2 * 8 * 32 * 32 * 3 * 9
    # stride 2 halves each side; groups divide Cin
    m = nn.Sequential(ConvBNAct(3, 8, 3, 2), ConvBNAct(8, 16, 3, groups=4))
    expected = 2 * (8 * 16 * 16 * 3 * 9 + 16 * 16 * 16 * (8 // 4) * 9)
    assert count_flops(m, 32) == expected


def test_linear_flops_and_bias_not_counted():
    m = nn.Sequential(nn.Conv2d(3, 4, 1, bias=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    assert count_flops(m, 8) == 2 * (4 * 8 * 8 * 3) + 2 * (4 * 10)


def test_param_counts_rules():
    m = nn.Sequential(ConvBNAct(3, 8, 3), ConvBNAct(8, 5, 1, bn=False, act=None))
    c = count_params(m)
    # weights only: 3*8*9 + 8*5 ; fused: + one bias per BN-folded conv (8) + the plain conv's bias (5)
    assert c["params_weights"] == 216 + 40
    assert c["params"] == 216 + 8 + 40 + 5
    assert c["params_train"] == 216 + 16 + 40 + 5  # BN gamma+beta
    # after a real fuse the deploy count is unchanged
    gradpath.nn.fuse_model(m)
    assert sum(p.numel() for p in m.parameters()) == c["params"]


def test_sequential_conv_bn_is_folded():
    m = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    assert count_params(m)["params"] == 108 + 4


def test_activation_memory_hand_computed():
    m = nn.Sequential(nn.Conv2d(3, 8, 1, bias=False))
    mem = activation_memory(m, 4)
    assert mem["act_mem_infer_mb"] * 2**20 == 8 * 16 * 4  # one float32 output of 8x4x4


def _stage_flops(m, size=32, chs=64):
    class Wrap(nn.Module):
        in_chans = chs

        def __init__(self):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x)

    return count_flops(Wrap(), size)


def test_csp_halves_computation_of_res_stage():
    c, n = 64, 8
    plain = nn.Sequential(*[res_block(c, c // 2) for _ in range(n)])
    csp = CSPStage(c, c, lambda ch, i: res_block(ch, ch), n=n, fusion="fusion")
    ratio = _stage_flops(csp) / _stage_flops(plain)
    # hand count per pixel: plain n*5C^2 = 40C^2; CSP n*2.5C^2 + split C^2 + transition C^2/4 + out C^2 = 22.25C^2
    assert ratio == pytest.approx(22.25 / 40, rel=1e-6)


def test_csp_fusion_variants_are_cheaper_than_fusion():
    c, n = 64, 2
    flops = {f: _stage_flops(CSPStage(c, c, lambda ch, i: res_block(ch, ch), n=n, fusion=f))
             for f in ("fusion", "first", "last", "none")}
    assert flops["first"] < flops["fusion"]
    assert flops["last"] < flops["fusion"]
    assert flops["none"] < min(flops["first"], flops["last"])
    # exact differences: first drops the h->h path transition, last the 2h->C output transition
    h, px = c // 2, 32 * 32
    assert flops["fusion"] - flops["first"] == 2 * px * h * h
    assert flops["fusion"] - flops["last"] == 2 * px * 2 * h * c


def test_csp_memory_per_block_is_two_thirds_of_plain():
    """Paper §3.2: CSP cuts a computational block's memory to about 2/3. Per added block (training), a plain
    darknet RB(C, C/2) keeps 4.5 C-channel maps alive for backward (1x1: conv+BN out at C/2; 3x3: conv+BN out at
    C; the add at C) while the CSP block RB(h, h), h = C/2, keeps 3 (every tensor at C/2): ratio 2/3."""
    c = 64

    def train_mem(n, csp):
        m = (CSPStage(c, c, lambda ch, i: res_block(ch, ch), n=n) if csp
             else nn.Sequential(*[res_block(c, c // 2) for _ in range(n)]))
        m.in_chans = c
        return activation_memory(m, 32)["act_mem_train_mb"]

    plain = train_mem(8, False) - train_mem(4, False)
    csp = train_mem(8, True) - train_mem(4, True)
    fmap_mb = c * 32 * 32 * 4 / 2**20
    assert plain == pytest.approx(4 * 4.5 * fmap_mb, rel=1e-3)
    assert csp / plain == pytest.approx(2 / 3, rel=1e-3)


def test_profile_keys_and_latency():
    m = gradpath.create_model("tiny-res")
    res = gradpath.profile(m, 32, iters=1, warmup=0)
    for k in ("params", "params_weights", "params_train", "gmacs", "gflops", "imgsz", "num_classes",
              "act_mem_infer_mb", "act_mem_train_mb", "latency_ms"):
        assert k in res
    assert res["gflops"] == pytest.approx(2 * res["gmacs"])
    assert res["num_classes"] == 10 and res["imgsz"] == 32
    assert m.training  # profile leaves the model's mode alone


def test_profile_rejects_bad_size():
    with pytest.raises(gradpath.GradpathError):
        gradpath.profile(gradpath.create_model("tiny-res"), -5)
