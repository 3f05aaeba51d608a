"""Performance-only layers must compute exactly what the plain PyTorch layers compute."""
import torch
from torch import nn

from gradpath.nn import ConvBNAct, fuse_model, to_channels_last
from gradpath.nn.conv import batch_norm_packed, packed_bn_rows


def _pair(c: int) -> tuple[nn.BatchNorm2d, nn.BatchNorm2d]:
    ours, ref = nn.BatchNorm2d(c, eps=1e-3, momentum=0.03), nn.BatchNorm2d(c, eps=1e-3, momentum=0.03)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ours.bias.normal_()
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def test_packed_bn_matches_native_in_training():
    torch.manual_seed(0)
    for c, pack in ((24, 2), (40, 2), (20, 4), (16, 0)):  # 16 is vector-aligned: the native path
        ours, ref = _pair(c)
        x = (torch.randn(4, c, 32, 32) * 3 + 1).contiguous(memory_format=torch.channels_last)
        g = torch.randn_like(x)
        assert packed_bn_rows(ours, x) == pack
        xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        ya, yb = (batch_norm_packed(ours, xa, pack) if pack else ours(xa)), ref(xb)
        ya.backward(g)
        yb.backward(g)
        assert torch.equal(ya, yb)  # the forward is the native kernel
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-5, atol=2e-4)
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad, rtol=1e-5, atol=2e-4)
        assert torch.equal(ours.running_mean, ref.running_mean) and torch.equal(ours.running_var, ref.running_var)
        assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 1
        assert xa.grad.is_contiguous(memory_format=torch.channels_last)


def test_packed_bn_hand_value():
    """Images of two channels-last pixels, 24 channels: x = (1, 3) in every channel, dy = (1, 0), γ = 1 → mean 2,
    σ² = 1, x̂ = (−1, 1); per image dγ = Σ dy·x̂ = −1, dβ = 1; dx = σ⁻¹(dy − mean dy − x̂·mean(dy·x̂)) = (0, 0) (eps → 0)."""
    bn = nn.BatchNorm2d(24, eps=0.0)
    x = torch.tensor([1.0, 3.0]).view(1, 1, 1, 2).repeat(16384, 24, 1, 1)  # 16384 images: large enough to pack
    x = x.contiguous(memory_format=torch.channels_last)
    assert packed_bn_rows(bn, x) == 2
    x.requires_grad_(True)
    g = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2).expand_as(x).contiguous(memory_format=torch.channels_last)
    batch_norm_packed(bn, x, 2).backward(g)
    torch.testing.assert_close(bn.weight.grad, torch.full((24,), -16384.0))
    torch.testing.assert_close(bn.bias.grad, torch.full((24,), 16384.0))
    torch.testing.assert_close(x.grad, torch.zeros_like(x), atol=1e-5, rtol=0)


def test_native_path_outside_cl_training():
    ours, _ = _pair(24)
    assert packed_bn_rows(ours, torch.randn(4, 24, 32, 32)) == 0  # NCHW
    assert packed_bn_rows(ours.eval(), torch.randn(4, 24, 32, 32).contiguous(memory_format=torch.channels_last)) == 0


def test_conv_bn_act_training_step_matches_plain_modules():
    """The ConvBNAct fast paths (packed BN backward, out-of-place SiLU under grad) vs conv → BN → SiLU in float64:
    as close as float32 allows (gradients are sums over 8192 positions: compared relative to their scale)."""
    torch.manual_seed(0)
    ours = to_channels_last(ConvBNAct(8, 24, 3).train())
    ref = nn.Sequential(nn.Conv2d(8, 24, 3, 1, 1, bias=False), nn.BatchNorm2d(24, 1e-3, 0.03), nn.SiLU()).double()
    ref.load_state_dict({"0.weight": ours.conv.weight, **{f"1.{k}": v for k, v in ours.bn.state_dict().items()}})
    x = torch.randn(8, 8, 32, 32).contiguous(memory_format=torch.channels_last)
    assert packed_bn_rows(ours.bn, ours.conv(x)) == 2
    ya, yb = ours(x), ref(x.double())
    torch.testing.assert_close(ya.double(), yb, rtol=1e-5, atol=1e-5)
    (ya * ya).sum().backward()
    (yb * yb).sum().backward()
    for a, b in ((ours.conv.weight.grad, ref[0].weight.grad), (ours.bn.weight.grad, ref[1].weight.grad),
                 (ours.bn.bias.grad, ref[1].bias.grad)):
        assert (a.double() - b).abs().max() <= 5e-5 * b.abs().max()  # native float32: ~1e-5; a wrong formula: ~1
    torch.testing.assert_close(ours.bn.running_var.double(), ref[1].running_var)
    torch.testing.assert_close(ours.bn.running_mean.double(), ref[1].running_mean)


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


def test_silu_in_place_only_without_grad():
    from gradpath.nn import make_act

    m = ConvBNAct(1, 1, 1, bn=False)  # the activation as ConvBNAct applies it
    with torch.no_grad():
        m.conv.weight.fill_(1.0)
        m.conv.bias.zero_()
    x = torch.tensor([-1.0, 0.0, 2.0]).view(1, 1, 1, 3).requires_grad_(True)
    y = m(x)
    assert y.grad_fn.name() == "SiluBackward0"  # out of place under grad: autograd need not clone the input
    y.sum().backward()
    s = torch.sigmoid(torch.tensor([-1.0, 0.0, 2.0]))
    v = torch.tensor([-1.0, 0.0, 2.0])
    torch.testing.assert_close(x.grad.flatten(), s * (1 + v * (1 - s)))  # d/dx x·σ(x)
    act = make_act("silu")
    with torch.no_grad():
        z = torch.tensor([0.0, 1.0])
        out = act(z)
    assert out.data_ptr() == z.data_ptr()  # in place at inference
    torch.testing.assert_close(out, torch.tensor([0.0, 1.0 / (1.0 + torch.exp(torch.tensor(-1.0)).item())]))
