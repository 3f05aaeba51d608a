"""§5 worked values through real torch modules (fx, and autograd where no channel group splits), the
PRN/CSP/ELAN/VoVNet/SparseNet values computed by hand, and the .grad cross-check of §3 / §8.4."""
import pytest
import torch
from torch import nn

from gradpath.analysis import analyze
from gradpath.models import create_model
from gradpath.nn import ELAN, ConvBNAct, CSPStage, DenseBlock, OSABlock, Residual, res_block

C = 4


def pair(stop_gradient=None, shortcut="add"):
    branch = nn.Sequential(ConvBNAct(C, C, 1), ConvBNAct(C, C, 3))
    return Residual(branch, C, shortcut=shortcut, stop_gradient=stop_gradient)


def resnet(K, **kw):
    return nn.Sequential(*[pair(**kw) for _ in range(K)])


def profiles(rep, rename):
    return {rename(v.id): rep.profile(v) for v in rep.units}


def res_names(uid):  # "0.branch.0" -> a1, "0.branch.1" -> b1
    blk, _, i = uid.split(".")
    return ("a" if i == "0" else "b") + str(int(blk) + 1)


def x4(s=8):
    return torch.randn(1, C, s, s)


BACKENDS = ["fx", "autograd"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_plain_chain(backend):
    m = nn.Sequential(*[ConvBNAct(C, C, 3) for _ in range(4)])
    rep = analyze(m, x4(), backend=backend)
    assert {v.id: rep.profile(v) for v in rep.units} == {"0": {4: 1}, "1": {3: 1}, "2": {2: 1}, "3": {1: 1}}
    assert rep.input_profile() == {4: 1}
    assert rep.backend == backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_resnet_k3(backend):
    rep = analyze(resnet(3), x4(), backend=backend)
    assert profiles(rep, res_names) == {
        "b3": {1: 1}, "a3": {2: 1}, "b2": {1: 1, 3: 1}, "a2": {2: 1, 4: 1}, "b1": {1: 1, 3: 2, 5: 1},
        "a1": {2: 1, 4: 2, 6: 1}}
    assert rep.input_profile() == {0: 1, 2: 3, 4: 3, 6: 1}
    assert [rep.unit(f"{k}.branch.0").af for k in range(3)] == [1, 2, 3]
    s = rep.sources("0.branch.1")
    assert set(s[3]) == {"1.branch.0", "2.branch.0"} and s[5] == ["1.branch.0"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_gradient_variants(backend):
    rep = analyze(resnet(3, stop_gradient="identity"), x4(), backend=backend)
    assert profiles(rep, res_names) == {"b3": {1: 1}, "a3": {2: 1}, "b2": {3: 1}, "a2": {4: 1}, "b1": {5: 1},
                                        "a1": {6: 1}}
    assert rep.input_profile() == {6: 1}
    rep = analyze(resnet(3, stop_gradient="block"), x4(), backend=backend)
    assert profiles(rep, res_names) == {f"{c}{k}": {1: 1} if c == "b" else {2: 1} for c in "ab" for k in (1, 2, 3)}
    assert rep.input_profile() == {0: 1}
    assert (rep.network()["lgp"], rep.network()["lsgp"]) == (2, 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_densenet_l4(backend):
    rep = analyze(DenseBlock(C, 2, 4, bottleneck=0), x4(), backend=backend)
    got = {int(v.id.split(".")[1]) + 1: rep.profile(v) for v in rep.units}
    assert got == {4: {1: 1}, 3: {1: 1, 2: 1}, 2: {1: 1, 2: 2, 3: 1}, 1: {1: 1, 2: 3, 3: 3, 4: 1}}
    assert rep.input_profile() == {0: 1, 1: 4, 2: 6, 3: 4, 4: 1}
    assert [v.af for v in rep.units] == [1, 2, 3, 4]


def test_prn_masked_residual_fx():
    # Hand computation (2 masked blocks, identity on channels [0,2) of 4, y_k = b_k(a_k(y)) + pad(y[:, :2])):
    # the add cuts y_k and b_k at channel 2. b2's halves both feed only L -> merged: {1:1}; a2 {2:1}.
    # b1[0:2] feeds a2 and (identity) L: {1:1, 3:1}; b1[2:4] feeds a2 only: {3:1}.
    # a1 feeds both b1 groups: {2:1} + {4:1} + {4:1} = {2:1, 4:2} (3 routes, §6.4).
    # input[0:2] -> {a1, a2, L}: {0:1, 2:2, 4:2}; input[2:4] -> {a1}: {2:1, 4:2}; sum {0:1, 2:3, 4:4}.
    rep = analyze(resnet(2, shortcut="masked"), x4(), backend="fx")
    got = {v.id: rep.profile(v) for v in rep.units}
    assert got == {"0.branch.0": {2: 1, 4: 2}, "0.branch.1[0:2]": {1: 1, 3: 1}, "0.branch.1[2:4]": {3: 1},
                   "1.branch.0": {2: 1}, "1.branch.1": {1: 1}}
    assert rep.input_profile() == {0: 1, 2: 3, 4: 4}
    assert rep.network()["lsgp"] == 3 and rep.network()["split_layers"] == 1
    assert rep.unit("1.branch.0").af == 2  # b1 and the input (through the identity) are summed into a2
    # autograd has no channel groups: it sees the plain ResNet values and says so
    rep = analyze(resnet(2, shortcut="masked"), x4(), backend="autograd")
    assert rep.profile("0.branch.1") == {1: 1, 3: 1}
    assert any("channel groups" in w for w in rep.warnings)


def csp(fusion):
    out = 4 if fusion in ("fusion", "first") else 4
    return CSPStage(C, out, lambda c, i: res_block(c, c), n=1, fusion=fusion)


# Hand computation, units sp/sc (split convs), a/b (res block, y = sp + b(a(sp))), tp/to (transitions):
#  fusion: cat[tp(y), sc] -> to -> L: to 1; tp 2; sc 2; b 3; a 4; sp -> {a, tp}: {3,5}; input {2,3,5}
#  first:  cat[y, sc] -> to: to 1; sc 2; b 2; a 3; sp -> {a, to}: {2,4}; input {2:2, 4:1}
#  last:   cat[tp(y), sc] -> L: tp 1; sc 1; b 2; a 3; sp {2,4}; input {1,2,4}
#  none:   cat[y, sc] -> L: sc 1; b 1; a 2; sp -> {a, L}: {1,3}; input {1:2, 3:1}
CSP_WANT = {
    "fusion": ({"split_path": {3: 1, 5: 1}, "split_cross": {2: 1}, "blocks.0.branch.0": {4: 1},
                "blocks.0.branch.1": {3: 1}, "transition_path": {2: 1}, "transition_out": {1: 1}},
               {2: 1, 3: 1, 5: 1}, 5, 4),
    "first": ({"split_path": {2: 1, 4: 1}, "split_cross": {2: 1}, "blocks.0.branch.0": {3: 1},
               "blocks.0.branch.1": {2: 1}, "transition_out": {1: 1}}, {2: 2, 4: 1}, 4, 3),
    "last": ({"split_path": {2: 1, 4: 1}, "split_cross": {1: 1}, "blocks.0.branch.0": {3: 1},
              "blocks.0.branch.1": {2: 1}, "transition_path": {1: 1}}, {1: 1, 2: 1, 4: 1}, 4, 3),
    "none": ({"split_path": {1: 1, 3: 1}, "split_cross": {1: 1}, "blocks.0.branch.0": {2: 1},
              "blocks.0.branch.1": {1: 1}}, {1: 2, 3: 1}, 3, 2),
}


@pytest.mark.parametrize("fusion", list(CSP_WANT))
@pytest.mark.parametrize("backend", BACKENDS)
def test_csp_variants(fusion, backend):
    want, inp, lgp, lsgp = CSP_WANT[fusion]
    rep = analyze(csp(fusion), x4(), backend=backend)
    assert {v.id: rep.profile(v) for v in rep.units} == want
    assert rep.input_profile() == inp
    assert (rep.network()["lgp"], rep.network()["lsgp"]) == (lgp, lsgp)


@pytest.mark.parametrize("backend", BACKENDS)
def test_elan_two_blocks(backend):
    # Hand computation: cat[b2c2, b1c2, q, p] -> t -> L. t 1; p 2; b2c2 2; b2c1 3; b1c2 -> {b2c1, t}: {2,4};
    # b1c1 {3,5}; q -> {b1c1, t}: {2,4,6}; input -> {p, q}: {2:2, 4:1, 6:1}. LSGP 3, LGP 6, AF(t) = 4.
    rep = analyze(ELAN(C, C, entry_chs=2, n_blocks=2, convs_per_block=2), x4(), backend=backend)
    assert {v.id: rep.profile(v) for v in rep.units} == {
        "cross": {2: 1}, "entry": {2: 1, 4: 1, 6: 1}, "blocks.0.0": {3: 1, 5: 1}, "blocks.0.1": {2: 1, 4: 1},
        "blocks.1.0": {3: 1}, "blocks.1.1": {2: 1}, "transition": {1: 1}}
    assert rep.input_profile() == {2: 2, 4: 1, 6: 1}
    assert (rep.network()["lgp"], rep.network()["lsgp"]) == (6, 3)
    assert rep.unit("transition").af == 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_vovnet_with_and_without_module_transitions(backend):
    # With transitions (2 modules, M=2): t2 1; d2 2; d1 {2,3}; t1 -> {d1, t2}: {2,3,4}; c2 -> {t1}: {3,4,5};
    # c1 -> {c2, t1}: {3:1, 4:2, 5:2, 6:1}. LSGP 3.
    m = nn.Sequential(OSABlock(C, 2, C, n_layers=2), OSABlock(C, 2, C, n_layers=2))
    rep = analyze(m, x4(), backend=backend)
    assert {v.id: rep.profile(v) for v in rep.units} == {
        "0.convs.0": {3: 1, 4: 2, 5: 2, 6: 1}, "0.convs.1": {3: 1, 4: 1, 5: 1}, "0.transition": {2: 1, 3: 1, 4: 1},
        "1.convs.0": {2: 1, 3: 1}, "1.convs.1": {2: 1}, "1.transition": {1: 1}}
    assert rep.network()["lsgp"] == 3
    # One transition per stage (ELAN-style plan): cat1 = [x, c1, c2] feeds d1 and cat2 -> t.
    # t 1; d2 2; d1 {2,3}; c2 -> {d1, t}: {2,3,4}; c1 -> {c2, d1, t}: {2:1, 3:2, 4:2, 5:1}. LSGP 2.
    m = nn.Sequential(OSABlock(C, 2, n_layers=2, transition=False), OSABlock(C + 4, 2, n_layers=2, transition=False),
                      ConvBNAct(C + 8, C, 1))
    rep = analyze(m, x4(), backend=backend)
    assert {v.id: rep.profile(v) for v in rep.units} == {
        "0.convs.0": {2: 1, 3: 2, 4: 2, 5: 1}, "0.convs.1": {2: 1, 3: 1, 4: 1}, "1.convs.0": {2: 1, 3: 1},
        "1.convs.1": {2: 1}, "2": {1: 1}}
    assert rep.network()["lsgp"] == 2


class SparseBlock(nn.Module):
    """SparseNet exponential fetch over positions 0 (input) .. n, output fetched from n+1 (cat)."""

    def __init__(self, n, k=2):
        super().__init__()
        self.n = n
        chans = [C]
        convs = []
        for i in range(1, n + 1):
            cin = sum(chans[j] for j in self.fetch(i))
            convs.append(ConvBNAct(cin, k, 3))
            chans.append(k)
        self.convs = nn.ModuleList(convs)

    @staticmethod
    def fetch(i):
        out, d = [], 1
        while i - d >= 0:
            out.append(i - d)
            d *= 2
        return out

    def forward(self, x):
        feats = [x]
        for i, conv in enumerate(self.convs, 1):
            feats.append(conv(torch.cat([feats[j] for j in self.fetch(i)], 1)))
        return torch.cat([feats[j] for j in self.fetch(self.n + 1)], 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparsenet_n4(backend):
    # same hand computation as test_paths_manual.py::test_sparsenet_popcount_closed_form
    rep = analyze(SparseBlock(4), x4(), backend=backend)
    assert [rep.profile(v) for v in rep.units] == [{1: 1, 2: 1, 3: 3, 4: 1}, {2: 2, 3: 1}, {1: 1, 2: 1}, {1: 1}]
    assert rep.input_profile() == {1: 2, 2: 3, 3: 4, 4: 1}
    assert [v.af for v in rep.units] == [1, 2, 2, 3]


def grad_check(model, x, **kw):
    """Units with gradient == parameters whose .grad is set after a real backward (§3, §8.4)."""
    rep = analyze(model, x, include_frozen=True, **kw)
    model.zero_grad(set_to_none=True)
    model.eval()
    out = model(x)
    outs = out if isinstance(out, (list, tuple)) else [out]
    sum(o.float().sum() for o in outs if o.requires_grad).backward()
    graph = rep.pg.graph
    unit_params, with_t = set(), set()
    for v in rep.units:
        names = set(graph.nodes[v.node].param_names)
        unit_params |= names
        if v.T:
            with_t |= names
    has_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert unit_params == {n for n, _ in model.named_parameters()}  # every parameter belongs to a unit
    assert with_t == has_grad
    return rep


@pytest.mark.parametrize("name", ["tiny-res", "tiny-prn", "tiny-csp", "tiny-elan"])
def test_grad_crosscheck_registered(name):
    rep = grad_check(create_model(name), torch.randn(1, 3, 32, 32), backend="fx")
    assert not rep.network()["no_gradient"]


@pytest.mark.parametrize("sg", ["identity", "block"])
def test_grad_crosscheck_stop_gradient_and_no_gradient(sg):
    m = nn.Sequential(ConvBNAct(C, C, 3), pair(stop_gradient=sg), pair(stop_gradient=sg))
    grad_check(m, x4(), backend="fx")
    # a detached block with no identity: everything before it has no gradient
    m = nn.Sequential(ConvBNAct(C, C, 3), pair(stop_gradient="block", shortcut="none"))
    rep = grad_check(m, x4(), backend="fx")
    assert rep.network()["no_gradient"] == ["0"]


def test_frozen_units_cost_one_but_are_hidden():
    m = resnet(2)
    for p in m[1].branch[1].parameters():
        p.requires_grad_(False)
    rep = analyze(m, x4(), backend="fx")
    assert "1.branch.1" not in [v.id for v in rep.units]
    assert rep.profile("1.branch.0") == {2: 1}  # the frozen b2 still counts
    rep = analyze(m, x4(), backend="fx", include_frozen=True)
    assert "1.branch.1" in [v.id for v in rep.units]


@pytest.mark.parametrize("name", ["tiny-res", "tiny-csp", "tiny-elan"])
def test_fx_and_autograd_agree_without_splits(name):
    m = create_model(name)
    a = analyze(m, torch.randn(1, 3, 32, 32), backend="fx")
    b = analyze(m, torch.randn(1, 3, 32, 32), backend="autograd")
    strip = lambda r: [(v.id, r.profile(v), v.af) for v in r.units]  # noqa: E731
    assert strip(a) == strip(b)


def test_auto_falls_back_to_autograd_with_a_warning():
    class Dyn(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = ConvBNAct(C, C, 3)

        def forward(self, x):
            if x.sum() > -1e9:  # data-dependent control flow: fx cannot trace it
                x = self.c(x)
            return x

    with pytest.warns(UserWarning, match="autograd"):
        rep = analyze(Dyn(), x4())
    assert rep.backend == "autograd" and rep.profile("c") == {1: 1}


def test_tuple_outputs_all_feed_the_loss():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.h1, self.h2 = ConvBNAct(C, C, 3), ConvBNAct(C, C, 1), ConvBNAct(C, C, 1)

        def forward(self, x):
            y = self.stem(x)
            return [self.h1(y), (self.h2(y),)]

    for backend in BACKENDS:
        rep = analyze(TwoHeads(), x4(), backend=backend)
        assert rep.profile("stem") == {2: 2}
