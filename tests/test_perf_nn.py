"""ConvBNAct is plain conv → norm → act, and every remaining fast path (BN folding for deploy, channels-last
weights) computes what the plain PyTorch modules compute."""
import functools

import pytest
import torch
from torch import nn

from gradpath.nn import ConvBNAct, fuse_model, make_act, to_channels_last


def _plain(ours: ConvBNAct) -> nn.Sequential:
    """The same layer as three stock modules, with ``ours``'s weights and statistics."""
    conv = ours.conv
    ref = nn.Sequential(nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                  conv.padding, groups=conv.groups, bias=False),
                        nn.BatchNorm2d(conv.out_channels, eps=ours.bn.eps, momentum=ours.bn.momentum), nn.SiLU())
    ref.load_state_dict({"0.weight": conv.weight, **{f"1.{k}": v for k, v in ours.bn.state_dict().items()}})
    return ref


@pytest.mark.parametrize("channels_last", [False, True])
def test_training_step_equals_stock_modules(channels_last):
    """Forward, every gradient, running statistics and the batch counter of a training step are those of
    Conv2d → BatchNorm2d → SiLU (bit for bit: the same kernels run)."""
    torch.manual_seed(0)
    ours = ConvBNAct(8, 24, 3).train()
    with torch.no_grad():
        ours.bn.weight.uniform_(0.5, 1.5)
        ours.bn.bias.normal_()
    ref = _plain(ours).train()
    x = torch.randn(4, 8, 16, 16)
    if channels_last:
        ours, ref = to_channels_last(ours), to_channels_last(ref)
        x = x.contiguous(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = ours(xa), ref(xb)
    assert torch.equal(ya, yb)
    (ya * ya).sum().backward()
    (yb * yb).sum().backward()
    assert torch.equal(xa.grad, xb.grad)
    for a, b in ((ours.conv.weight, ref[0].weight), (ours.bn.weight, ref[1].weight), (ours.bn.bias, ref[1].bias)):
        assert torch.equal(a.grad, b.grad)
    assert torch.equal(ours.bn.running_mean, ref[1].running_mean)
    assert torch.equal(ours.bn.running_var, ref[1].running_var)
    assert int(ours.bn.num_batches_tracked) == int(ref[1].num_batches_tracked) == 1


def test_channels_last_training_matches_nchw():
    """Channels-last weights change the conv algorithm, not the result (float32 rounding only)."""
    torch.manual_seed(0)
    a = nn.Sequential(ConvBNAct(3, 24, 3), ConvBNAct(24, 40, 3, 2)).train()
    b = to_channels_last(nn.Sequential(ConvBNAct(3, 24, 3), ConvBNAct(24, 40, 3, 2)).train())
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 16, 16)
    ya, yb = a(x), b(x)
    assert yb.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(yb, ya, rtol=1e-5, atol=1e-5)
    ya.square().sum().backward()
    yb.square().sum().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pb.grad, pa.grad, rtol=1e-4, atol=1e-4, msg=name)


def test_channels_last_fuse_keeps_layout_and_values():
    torch.manual_seed(0)
    m = nn.Sequential(ConvBNAct(3, 24, 3), ConvBNAct(24, 40, 3, 2)).train()
    m(torch.randn(2, 3, 16, 16))  # move BN statistics off their initial values
    x = torch.randn(1, 3, 16, 16)
    ref = fuse_model(m).eval()(x)
    m2 = fuse_model(to_channels_last(nn.Sequential(ConvBNAct(3, 24, 3), ConvBNAct(24, 40, 3, 2))))
    m2.load_state_dict(m.state_dict())
    y = m2(x)
    assert m2[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


def test_fuse_hand_value():
    """1×1 conv w = 2, BN γ = 3, β = 1, μ = 0.5, σ² = 4 − eps: y = 3·(2x − 0.5)/2 + 1 = 3x + 0.25."""
    m = ConvBNAct(1, 1, 1, act=None)
    with torch.no_grad():
        m.conv.weight.fill_(2.0)
        m.bn.weight.fill_(3.0)
        m.bn.bias.fill_(1.0)
        m.bn.running_mean.fill_(0.5)
        m.bn.running_var.fill_(4.0 - m.bn.eps)
    m.eval().fuse()
    assert isinstance(m.bn, nn.Identity)
    torch.testing.assert_close(m.conv.weight.flatten(), torch.tensor([3.0]))
    torch.testing.assert_close(m.conv.bias, torch.tensor([0.25]))
    assert m.fuse() is m and m.conv.bias.item() == pytest.approx(0.25)  # idempotent


def test_state_dict_keys_unchanged():
    """Checkpoints written before ConvBNAct became a plain composition still load."""
    assert list(ConvBNAct(4, 8, 3).state_dict()) == [
        "conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert list(ConvBNAct(4, 8, 1, bn=False).state_dict()) == ["conv.weight", "conv.bias"]


def test_hooks_fx_double_backward_and_func():
    """What the packed BN backward used to break: module hooks, fx, double backward, torch.func."""
    torch.manual_seed(0)
    m = ConvBNAct(2, 4, 3).train()
    seen = []
    for part in (m.conv, m.bn, m.act):
        part.register_forward_hook(lambda mod, i, o: seen.append(type(mod).__name__))
    x = torch.randn(2, 2, 5, 5, requires_grad=True)
    y = m(x)
    assert seen == ["Conv2d", "BatchNorm2d", "SiLU"]
    traced = torch.fx.symbolic_trace(m)
    assert [n.target for n in traced.graph.nodes if n.op == "call_module"] == ["conv", "bn", "act"]
    (g,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), x)  # a second derivative through BN and SiLU
    assert torch.isfinite(gg).all() and gg.abs().sum() > 0
    m.eval()
    params = {k: v.detach() for k, v in m.named_parameters()}
    buffers = {k: v for k, v in m.named_buffers()}
    out = torch.func.functional_call(m, (params, buffers), (x.detach(),))
    torch.testing.assert_close(out, m(x.detach()))
    jac = torch.func.jacrev(lambda inp: torch.func.functional_call(m, (params, buffers), (inp,)))(x.detach()[:1])
    assert jac.shape == (1, 4, 5, 5, 1, 2, 5, 5)


def test_injected_norm_and_act():
    m = ConvBNAct(4, 8, 3, norm_layer=functools.partial(nn.GroupNorm, 2), act_layer=nn.GELU)
    assert isinstance(m.bn, nn.GroupNorm) and m.bn.num_groups == 2 and isinstance(m.act, nn.GELU)
    x = torch.randn(1, 4, 6, 6)
    ref = nn.functional.gelu(m.bn(m.conv(x)))
    torch.testing.assert_close(m(x), ref)
    fuse_model(m)
    assert isinstance(m.bn, nn.GroupNorm)  # only BatchNorm folds
    with pytest.raises(TypeError):
        ConvBNAct(4, 8, act="relu", act_layer=nn.GELU)
    with pytest.raises(TypeError):
        ConvBNAct(4, 8, bn=False, norm_layer=nn.BatchNorm2d)


def test_activation_forms():
    """SiLU and Mish out of place (an in-place call under autograd clones its input); ReLU and leaky in place
    (their backward reads the output)."""
    assert not make_act("silu").inplace and not make_act("mish").inplace
    assert make_act("relu").inplace and make_act("leaky").inplace and make_act("leaky").negative_slope == 0.1
    x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    y = make_act("silu")(x)
    y.sum().backward()
    s = torch.sigmoid(x.detach())
    torch.testing.assert_close(x.grad, s * (1 + x.detach() * (1 - s)))  # d/dx x·σ(x)
