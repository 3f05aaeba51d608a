"""Building blocks: shapes, gradients reach every parameter, stop-gradient, masked/asymmetric residuals."""
import pytest
import torch
from torch import nn

from gradpath.errors import GradpathError
from gradpath.nn import (
    ELAN, ConvBNAct, CSPStage, DenseBlock, OSABlock, Residual, asymmetric_add, bottleneck_block,
    fuse_model, masked_channels, res_block, resx_block,
)

torch.manual_seed(0)


def _check(block: nn.Module, in_shape, out_shape):
    x = torch.randn(*in_shape, requires_grad=True)
    y = block(x)
    assert tuple(y.shape) == tuple(out_shape)
    assert y.shape[1] == block.out_channels
    y.square().mean().backward()
    missing = [n for n, p in block.named_parameters() if p.grad is None]
    assert not missing, missing
    assert x.grad is not None


BLOCKS = {
    "conv": (lambda: ConvBNAct(8, 16, 3, 2), (2, 8, 16, 16), (2, 16, 8, 8)),
    "res": (lambda: res_block(16), (2, 16, 8, 8), (2, 16, 8, 8)),
    "res-masked": (lambda: res_block(16, shortcut="masked"), (2, 16, 8, 8), (2, 16, 8, 8)),
    "bottleneck": (lambda: bottleneck_block(16, 8, 32, shortcut="asym"), (2, 16, 8, 8), (2, 32, 8, 8)),
    "bottleneck-s2": (lambda: bottleneck_block(32, 8, 32, stride=2, shortcut="asym"), (2, 32, 8, 8), (2, 32, 4, 4)),
    "resx": (lambda: resx_block(64, 64, 64, groups=32), (1, 64, 8, 8), (1, 64, 8, 8)),
    "dense": (lambda: DenseBlock(8, 4, 3), (2, 8, 8, 8), (2, 20, 8, 8)),
    "osa": (lambda: OSABlock(8, 4, 16, n_layers=3), (2, 8, 8, 8), (2, 16, 8, 8)),
    "osa-notrans": (lambda: OSABlock(8, 4, None, n_layers=3, transition=False), (2, 8, 8, 8), (2, 20, 8, 8)),
    "elan": (lambda: ELAN(16, 32, 8, n_blocks=2, convs_per_block=2), (2, 16, 8, 8), (2, 32, 8, 8)),
    "elan-s1": (lambda: ELAN(16, 32, 8, n_blocks=4, convs_per_block=1), (2, 16, 8, 8), (2, 32, 8, 8)),
    "elan-csp": (lambda: ELAN(16, 32, 8, n_blocks=2, convs_per_block=2, cross_bypass=True), (2, 16, 8, 8),
                 (2, 32, 8, 8)),
}
BLOCKS.update({
    f"csp-{f}": (lambda f=f: CSPStage(16, 32, lambda c, i: res_block(c, c), n=2, fusion=f), (2, 16, 8, 8), (2, 32, 8, 8))
    for f in ("fusion", "first", "last", "none")
})


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_shapes_and_gradients(name):
    make, i, o = BLOCKS[name]
    _check(make(), i, o)


def test_fuse_matches_unfused():
    m = nn.Sequential(ConvBNAct(3, 8, 3), res_block(8), ConvBNAct(8, 4, 1, act=None))
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
            nn.init.uniform_(mod.weight, 0.5, 1.5)
            nn.init.uniform_(mod.bias, -0.5, 0.5)
    x = torch.randn(2, 3, 10, 10)
    m.eval()
    ref = m(x)
    fuse_model(m)
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in m.modules())
    torch.testing.assert_close(m(x), ref, atol=1e-5, rtol=1e-5)


def _identity_branch_grads(stop_gradient):
    torch.manual_seed(1)
    branch = nn.Sequential(nn.Conv2d(4, 4, 1, bias=False))
    block = Residual(branch, 4, stop_gradient=stop_gradient)
    x = torch.randn(1, 4, 3, 3, requires_grad=True)
    block(x).sum().backward()
    return block, x


def test_stop_gradient_identity_leaves_only_branch_gradient():
    block, x = _identity_branch_grads("identity")
    # d/dx sum(W x) = W^T 1, no +1 from the identity
    w = block.branch[0].weight.detach().reshape(4, 4)
    expected = (w.t() @ torch.ones(4)).reshape(1, 4, 1, 1).expand(1, 4, 3, 3)
    torch.testing.assert_close(x.grad, expected)
    assert block.branch[0].weight.grad is not None


def test_stop_gradient_block_leaves_only_identity_gradient():
    block, x = _identity_branch_grads("block")
    torch.testing.assert_close(x.grad, torch.ones_like(x))  # identity only
    assert block.branch[0].weight.grad is not None  # the block still learns (Fig. 9b)


def test_stop_gradient_rejects_unknown():
    with pytest.raises(GradpathError):
        Residual(nn.Identity(), 4, stop_gradient="both")


def test_masked_residual_leaves_masked_channels_without_identity():
    branch = nn.Conv2d(8, 8, 1, bias=False)
    block = Residual(branch, 8, shortcut="masked", mask_ratio=0.5)
    x = torch.randn(2, 8, 4, 4)
    diff = block(x) - branch(x)
    torch.testing.assert_close(diff[:, :4], x[:, :4])
    assert torch.all(diff[:, 4:] == 0)
    # gradient: masked channels of x get no identity gradient
    x.requires_grad_(True)
    block2 = Residual(nn.Conv2d(8, 8, 1, bias=False).requires_grad_(False), 8, shortcut="masked",
                      stop_gradient="block")
    block2(x).sum().backward()
    assert torch.all(x.grad[:, :4] == 1) and torch.all(x.grad[:, 4:] == 0)


def test_masked_channels_positions():
    assert masked_channels(64, 0.5) == (0, 32)
    assert masked_channels(64, 0.5, "first") == (32, 64)
    assert masked_channels(10, 0.25) == (0, 8)  # round(2.5)=2 masked (banker's), 8 keep identity
    with pytest.raises(GradpathError):
        masked_channels(8, 1.5)


def test_asymmetric_add_channels_and_space():
    y = torch.zeros(1, 4, 4, 4)
    x = torch.ones(1, 2, 4, 4)
    out = asymmetric_add(x, y)
    assert out.shape == y.shape and out[:, :2].eq(1).all() and out[:, 2:].eq(0).all()
    x = torch.arange(6 * 16, dtype=torch.float).reshape(1, 6, 4, 4)
    out = asymmetric_add(x, torch.zeros(1, 4, 2, 2))  # larger identity: first 4 channels, stride-2 sampled
    torch.testing.assert_close(out, x[:, :4, ::2, ::2])
    small = torch.ones(1, 4, 2, 2)
    out = asymmetric_add(small, torch.zeros(1, 4, 4, 4))  # smaller identity lands on every 2nd position
    assert out.sum() == 16 and out[0, 0, 0, 0] == 1 and out[0, 0, 1, 1] == 0


def test_csp_rejects_bad_arguments():
    with pytest.raises(GradpathError, match=r"fusion must be one of \('fusion', 'first', 'last', 'none'\), "
                       r"got 'lats'\. Did you mean: last\?"):
        CSPStage(16, 32, lambda c, i: res_block(c, c), fusion="lats")
    with pytest.raises(GradpathError):  # fusion last outputs path+cross = 16+16, not 40
        CSPStage(16, 40, lambda c, i: res_block(c, c), n=1, fusion="last", path_chs=16, cross_chs=16)


def test_elan_concat_width_and_aggregate():
    m = ELAN(32, 64, 16, n_blocks=4, convs_per_block=1)  # w = e*s/2 = 8; cat = 2e + 4w = 64
    assert m.transition.conv.in_channels == 64
    m = ELAN(32, 64, 16, n_blocks=2, convs_per_block=2, aggregate=(2,))  # w = 16; cat = 32 + 16
    assert m.transition.conv.in_channels == 48
    with pytest.raises(GradpathError):
        ELAN(32, 64, 16, n_blocks=2, aggregate=(3,))


def test_elan_cross_bypass_is_csp_fusion_last():
    """cross_bypass: the transition sees cat[b2, b1, q] (8 + 2·8 = 24 → 32 − 8 = 24 channels) and p is appended
    after it untouched — the output's last e channels are exactly the cross entry p."""
    torch.manual_seed(0)
    m = ELAN(16, 32, 8, n_blocks=2, convs_per_block=2, cross_bypass=True).eval()
    assert (m.transition.conv.in_channels, m.transition.conv.out_channels) == (24, 24)
    x = torch.randn(1, 16, 6, 6)
    q = m.entry(x)
    b1 = m.blocks[0](q)
    b2 = m.blocks[1](b1)
    expected = torch.cat([m.transition(torch.cat([b2, b1, q], 1)), m.cross(x)], 1)
    torch.testing.assert_close(m(x), expected)
    with pytest.raises(GradpathError, match="out_chs > entry_chs"):
        ELAN(16, 8, 8, cross_bypass=True)
