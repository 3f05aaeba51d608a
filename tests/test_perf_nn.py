"""Performance-only layers must compute exactly what the plain PyTorch layers compute."""
import torch
from torch import nn

from gradpath.nn import ConvBNAct, fuse_model, to_channels_last
from gradpath.nn.conv import BatchNorm2d


def _pair(c: int) -> tuple[BatchNorm2d, nn.BatchNorm2d]:
    ours, ref = BatchNorm2d(c, eps=1e-3, momentum=0.03), nn.BatchNorm2d(c, eps=1e-3, momentum=0.03)
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
        assert ours._pack(x) == pack
        xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        ya, yb = ours(xa), ref(xb)
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
    bn = BatchNorm2d(24, eps=0.0)
    x = torch.tensor([1.0, 3.0]).view(1, 1, 1, 2).repeat(16384, 24, 1, 1)  # 16384 images: large enough to pack
    x = x.contiguous(memory_format=torch.channels_last)
    assert bn._pack(x) == 2
    x.requires_grad_(True)
    g = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2).expand_as(x).contiguous(memory_format=torch.channels_last)
    bn(x).backward(g)
    torch.testing.assert_close(bn.weight.grad, torch.full((24,), -16384.0))
    torch.testing.assert_close(bn.bias.grad, torch.full((24,), 16384.0))
    torch.testing.assert_close(x.grad, torch.zeros_like(x), atol=1e-5, rtol=0)


def test_native_path_outside_cl_training():
    ours, _ = _pair(24)
    assert ours._pack(torch.randn(4, 24, 32, 32)) == 0  # NCHW
    assert ours.eval()._pack(torch.randn(4, 24, 32, 32).contiguous(memory_format=torch.channels_last)) == 0


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
