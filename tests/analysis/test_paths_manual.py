"""docs/gradient-paths.md §5.1–5.6 worked examples on hand-built graphs (no torch in the algorithms), and
Table 1 on the real nn.Module families of ``gradpath.analysis.scaling``."""
import json
import math
from math import comb

import pytest
from hand_graphs import densenet_graph, plain_graph, resnet_graph, sparsenet_graph

from gradpath.analysis import OpGraph, analyze
from gradpath.analysis.scaling import FAMILIES, TABLE1, fit_growth, scaling

HAND_GRAPHS = {"plain": plain_graph, "resnet": resnet_graph, "densenet": densenet_graph,
               "sparsenet": sparsenet_graph, "sparse-resnet": lambda n: sparsenet_graph(n, aggregate="add")}


def prof(rep, uid):
    return rep.profile(uid)


def test_plain_n4():
    rep = analyze(plain_graph(4))
    for i in range(1, 5):
        assert prof(rep, f"c{i}") == {5 - i: 1}
    assert rep.input_profile() == {4: 1}
    net = rep.network()
    assert (net["lgp"], net["lsgp"], net["max_aggregated_features"]) == (4, 4, 1)


def test_resnet_k3_worked_values():
    rep = analyze(resnet_graph(3))
    want = {"b3": {1: 1}, "a3": {2: 1}, "b2": {1: 1, 3: 1}, "a2": {2: 1, 4: 1},
            "b1": {1: 1, 3: 2, 5: 1}, "a1": {2: 1, 4: 2, 6: 1}}
    for u, p in want.items():
        assert prof(rep, u) == p, u
    assert rep.input_profile() == {0: 1, 2: 3, 4: 3, 6: 1}
    net = rep.network()
    assert (net["lgp"], net["lsgp"]) == (6, 2)
    s = rep.sources("b1")
    assert s[1] == ["loss"] and set(s[3]) == {"a2", "a3"} and s[5] == ["a2"]
    rounds = {k: set(v) for k, v in rep.rounds().items()}
    assert rounds == {1: {"b1", "b2", "b3"}, 2: {"a1", "a2", "a3"}, 3: {"b1", "b2"}, 4: {"a1", "a2"},
                      5: {"b1"}, 6: {"a1"}}
    for k in (1, 2, 3):
        assert rep.unit(f"a{k}").af == k


def test_resnet_binomial_closed_form_up_to_12():
    for K in (1, 5, 12):
        rep = analyze(resnet_graph(K))
        for k in range(1, K + 1):
            j = K - k
            assert prof(rep, f"b{k}") == {2 * i + 1: comb(j, i) for i in range(j + 1)}
            assert prof(rep, f"a{k}") == {2 * i + 2: comb(j, i) for i in range(j + 1)}
        assert rep.input_profile() == {2 * i: comb(K, i) for i in range(K + 1)}


def test_stop_gradient_identity_and_block():
    rep = analyze(resnet_graph(3, stop_gradient="identity"))
    want = {"b3": {1: 1}, "a3": {2: 1}, "b2": {3: 1}, "a2": {4: 1}, "b1": {5: 1}, "a1": {6: 1}}
    assert {u: prof(rep, u) for u in want} == want
    assert rep.input_profile() == {6: 1}
    assert (rep.network()["lgp"], rep.network()["lsgp"]) == (6, 6)
    rep = analyze(resnet_graph(3, stop_gradient="block"))
    for k in (1, 2, 3):
        assert prof(rep, f"b{k}") == {1: 1} and prof(rep, f"a{k}") == {2: 1}
    assert rep.input_profile() == {0: 1}
    assert (rep.network()["lgp"], rep.network()["lsgp"]) == (2, 2)
    # AF ignores stop-gradient (§1)
    assert rep.unit("a3").af == 3


def test_densenet_l4_worked_values_and_closed_form():
    rep = analyze(densenet_graph(4))
    want = {"c4": {1: 1}, "c3": {1: 1, 2: 1}, "c2": {1: 1, 2: 2, 3: 1}, "c1": {1: 1, 2: 3, 3: 3, 4: 1}}
    assert {u: prof(rep, u) for u in want} == want
    assert rep.input_profile() == {0: 1, 1: 4, 2: 6, 3: 4, 4: 1}
    assert (rep.network()["lgp"], rep.network()["lsgp"]) == (4, 1)
    assert set(rep.sources("c1")[2]) == {"c2", "c3", "c4"}
    assert [rep.unit(f"c{i}").af for i in range(1, 5)] == [1, 2, 3, 4]
    L = 11
    rep = analyze(densenet_graph(L))
    for i in range(1, L + 1):
        assert prof(rep, f"c{i}") == {k: comb(L - i, k - 1) for k in range(1, L - i + 2)}


def test_sparsenet_popcount_closed_form():
    # hand computation for N=4: c_i reads positions i-1, i-2, i-4 >= 0; the output reads 4, 3, 1.
    # cons: c4 {L}; c3 {c4, L}; c2 {c3, c4}; c1 {c2, c3, L}; input {c1, c2, c4}
    rep = analyze(sparsenet_graph(4))
    assert prof(rep, "c4") == {1: 1}
    assert prof(rep, "c3") == {1: 1, 2: 1}
    assert prof(rep, "c2") == {2: 2, 3: 1}
    assert prof(rep, "c1") == {1: 1, 2: 1, 3: 3, 4: 1}
    assert rep.input_profile() == {1: 2, 2: 3, 3: 4, 4: 1}
    assert [rep.unit(f"c{i}").af for i in range(1, 5)] == [1, 2, 2, 3]
    for n in (5, 9, 12):
        rep = analyze(sparsenet_graph(n))
        for i in range(1, n + 1):
            assert rep.unit(f"c{i}").sgp == bin(n + 1 - i).count("1"), (n, i)


def test_elan_lsgp_3_and_vovnet_closed_forms_manual():
    # ELAN with n blocks of 2 convs (p, q entries; cat[b_n..b_1, q, p] -> t): LSGP = 3 for any n
    for n in (1, 4, 12):
        g = OpGraph()
        x = g.input("input", 8)
        p, q = g.unit("p", x, 4), g.unit("q", x, 4)
        y, outs = q, []
        for i in range(n):
            y = g.unit(f"b{i}c2", g.unit(f"b{i}c1", y, 4), 4)
            outs.append(y)
        g.loss(g.unit("t", g.cat(outs[::-1] + [q, p]), 8))
        assert analyze(g).network()["lsgp"] == 3
    # OSA module with M chained convs and a transition over cat[x, c1..cM]: LGP M+1, LSGP 2
    for M in (2, 5, 12):
        g = OpGraph()
        x = g.input("input", 8)
        feats, y = [x], x
        for i in range(M):
            y = g.unit(f"c{i + 1}", y, 4)
            feats.append(y)
        g.loss(g.unit("t", g.cat(feats), 8))
        net = analyze(g).network()
        assert (net["lgp"], net["lsgp"]) == (M + 1, 2)


def test_prn_manual_groups():
    # hand computation: see test_backends.py::test_prn_masked_residual (same net, op level)
    g = OpGraph()
    x = g.input("input", 4)
    y = x
    for k in (1, 2):
        b = g.unit(f"b{k}", g.unit(f"a{k}", y, 4), 4)
        y = g.add(b, g.pad(g.slice(y, 0, 2), 0, 4))
    g.loss(y)
    rep = analyze(g)
    assert prof(rep, "b2") == {1: 1}  # the last block's two groups merge (§2.3)
    assert prof(rep, "b1[0:2]") == {1: 1, 3: 1} and prof(rep, "b1[2:4]") == {3: 1}
    assert prof(rep, "a1") == {2: 1, 4: 2}
    assert rep.input_profile() == {0: 1, 2: 3, 4: 4}
    assert rep.network()["lsgp"] == 3


def _check_invariants(rep):
    pg = rep.pg
    for v in pg.vertices[:-1]:
        p = pg.profile(v)
        if v.T:
            assert v.sgp == min(p) and v.lgp == max(p) and set(p) == set(v.timestamps)
        assert v.paths == sum(p.values()) == sum(pg.vertices[c].paths for c in v.cons)


def test_invariants_on_all_families():
    for f in HAND_GRAPHS.values():
        _check_invariants(analyze(f(9)))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_real_module_families_equal_the_hand_graphs(family):
    # the nn.Module nets that --scaling analyses give, unit by unit, the hand-computed graph's values
    for n in (4, 9):
        real, hand = analyze(FAMILIES[family](n)), analyze(HAND_GRAPHS[family](n))
        assert real.backend == "fx"
        strip = lambda r: [(v.id, r.profile(v), v.af, v.params) for v in r.units]  # noqa: E731
        assert strip(real) == strip(hand)
        assert real.input_profile() == hand.input_profile()
    assert [u["module"] for u in real.to_dict()["units"]][:2] == (
        ["a1.0", "b1.0"] if family == "resnet" else ["c1.0", "c2.0"])  # the Conv2d inside each c_i wrapper


def test_pass_through_and_split_cat_round_trip_change_nothing():
    def strip(units):
        return [{k: u[k] for k in ("id", "sgp", "lgp", "profile", "sources", "aggregated_features")} for u in units]

    base = strip(analyze(resnet_graph(3)).to_dict()["units"])
    g = OpGraph()
    x = g.input("input", 8)
    for k in (1, 2, 3):
        a = g.unit(f"a{k}", g.op("relu", x), 8)
        a = g.cat([g.slice(a, 0, 3), g.slice(a, 3, 8)])  # split -> cat round trip
        b = g.unit(f"b{k}", g.op("dropout", a), 8)
        x = g.op("act", g.add(x, g.op("identity", b)))
    g.loss(g.op("mean", x, mixing=True))
    assert strip(analyze(g).to_dict()["units"]) == base


def test_head_shifts_every_length_by_one():
    g = resnet_graph(3)
    last = len(g.nodes) - 2  # the final add
    g.nodes.pop()
    g.edges = [e for e in g.edges if e.dst != last + 1]
    g.unit("head", last, 8)
    g.loss(len(g.nodes) - 1)
    a, b = analyze(resnet_graph(3)), analyze(g)
    for k in (1, 2, 3):
        for u in (f"a{k}", f"b{k}"):
            assert prof(b, u) == {t + 1: n for t, n in prof(a, u).items()}


def test_detach_never_adds_timestamps_nor_lowers_sgp():
    ref = analyze(resnet_graph(4))
    for sg in ("identity", "block"):
        rep = analyze(resnet_graph(4, stop_gradient=sg))
        for v in rep.units:
            r = ref.unit(v.id)
            assert set(v.timestamps) <= set(r.timestamps)
            assert v.sgp is None or v.sgp >= r.sgp


def test_resnet_200_has_2_pow_200_paths():
    # exact counts without enumeration: listing 2**200 paths would never finish, so a regression hangs here
    # rather than failing a time limit (no timing assertion: shared CI machines vary)
    rep = analyze(resnet_graph(200))
    ip = rep.input_profile()
    assert sum(ip.values()) == 2 ** 200 and ip[200] == comb(200, 100)
    assert rep.to_dict()["network"]["input"]["paths"] == str(2 ** 200)  # > 2**53: a string in JSON


def test_table1_growth_classes():
    for fam, (params, lsgp, af) in TABLE1.items():
        g = scaling(fam, (4, 8, 16, 32, 64))["growth"]
        assert (g["params"], g["lsgp"], g["max_af"]) == (params, lsgp, af), fam


def test_table1_rows_by_hand():
    # densenet N=4, k=16: conv i reads 16*i channels -> params 9*16*16*(1+2+3+4) = 23,040; LSGP 1 (every conv
    # feeds the output cat); LGP 4 (c1 through c2, c3, c4); the last conv sums 4 feature maps (AF 4)
    rows = scaling("densenet", (4, 8, 16))["rows"]
    assert rows[0] == {"N": 4, "params": 23040, "lsgp": 1, "lgp": 4, "max_af": 4, "mean_af": 2.5}
    # plain N=8: 8 convs of 9*16*16 = 2,304 params; LSGP = LGP = 8; one input each
    assert scaling("plain", (8, 9, 10))["rows"][0] == {"N": 8, "params": 18432, "lsgp": 8, "lgp": 8,
                                                        "max_af": 1, "mean_af": 1.0}


def test_fit_growth_classes():
    ns = [4, 8, 16, 32, 64]
    assert fit_growth([2, 4, 8, 16], [5, 5, 5, 5]) == "1"
    assert fit_growth(ns, [3 * n + 1 for n in ns]) == "N"
    assert fit_growth(ns, [n * n for n in ns]) == "N^2"
    assert fit_growth(ns, [round(5 * math.log(n), 6) for n in ns]) == "log N"


def test_json_schema():
    d = analyze(resnet_graph(2)).to_dict()
    assert json.loads(json.dumps(d)) == d
    u = d["units"][0]
    for key in ("name", "channels", "sgp", "lgp", "timestamps", "profile", "paths", "aggregated_features",
                "sources"):
        assert key in u
    assert u["name"] == "a1" and u["profile"] == {"2": 1, "4": 1} and u["sources"] == {"2": ["b1"], "4": ["b1"]}
    for key in ("lgp", "lsgp", "units"):
        assert key in d["network"]
