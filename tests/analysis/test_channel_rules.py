"""The channel-rule registry of the fx backend: a user's untraceable function registered as a leaf with a
generic rule is analysed by fx with its channel groups (instead of the layer-level autograd fallback)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradpath.analysis import analyze, channel_rules, register_leaf_function
from gradpath.analysis.channel_rules import prefix_add, rule_for_call


def shortcut(identity, y):
    """y plus identity on their common leading channels; branches on shapes, so fx cannot trace into it."""
    if identity.shape[1] == y.shape[1]:
        return y + identity
    return y + F.pad(identity, (0, 0, 0, 0, 0, y.shape[1] - identity.shape[1]))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(4, 8, 1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = shortcut(x, self.a(x))
        return y, self.b(y[:, 4:])


@pytest.fixture
def registered():
    register_leaf_function(shortcut, prefix_add)
    yield
    del channel_rules.LEAF_FUNCTIONS[shortcut], channel_rules.RULES[shortcut]  # leave the registry as found


def test_leaf_function_with_a_generic_rule(registered):
    # Hand computation: y[0:4] = a[0:4] + x feeds L; y[4:8] = a[4:8] feeds L and b. So a splits:
    # a[0:4] {1:1}; a[4:8] {1:1, 2:1} (directly, and through b); b {1:1}.
    # The input reaches L through the identity (length 0), a[0:4] (1), a[4:8] (1 and 2): {0:1, 1:2, 2:1}.
    rep = analyze(Net(), torch.randn(1, 4, 4, 4))
    assert rep.backend == "fx" and not rep.warnings
    assert {v.id: rep.profile(v) for v in rep.units} == {"a[0:4]": {1: 1}, "a[4:8]": {1: 1, 2: 1}, "b": {1: 1}}
    assert rep.input_profile() == {0: 1, 1: 2, 2: 1}


def test_unregistered_function_falls_back_to_layers():
    # without the rule fx cannot trace the shape branch: the autograd backend sees whole layers only
    with pytest.warns(UserWarning, match="fell back to the autograd backend"):
        rep = analyze(Net(), torch.randn(1, 4, 4, 4))
    assert rep.backend == "autograd"
    assert {v.id: rep.profile(v) for v in rep.units} == {"a": {1: 1, 2: 1}, "b": {1: 1}}


def test_lookup_order():
    assert rule_for_call(torch.cat) is rule_for_call("cat") is channel_rules.cat  # torch op by its name

    def cat(xs, dim=0):  # a user function is never matched by its name alone
        return xs[0]

    assert rule_for_call(cat) is None
    assert rule_for_call(shortcut) is None and channel_rules.RULES.get("shortcut") is None
