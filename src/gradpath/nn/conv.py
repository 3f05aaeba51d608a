"""Conv → BatchNorm → activation, the unit every network of the paper is built from.

Shapes: (N, in_chs, H, W) → (N, out_chs, ceil(H/stride), ceil(W/stride)) with "same" padding.
For deployment ``fuse()`` folds BN into the conv (as YOLOv5's ``model.fuse()`` does), which is also the
model the paper's parameter counts refer to (ARCHITECTURES.md §0).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "silu": lambda: nn.SiLU(inplace=True),
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky": lambda: nn.LeakyReLU(0.1, inplace=True),
    "mish": lambda: nn.Mish(inplace=True),
    "identity": nn.Identity,
    "linear": nn.Identity,
}


def make_act(act: str | None | nn.Module) -> nn.Module:
    """An activation from its name (``silu``, ``relu``, ``leaky``, ``mish``, ``linear``) or None."""
    if act is None:
        return nn.Identity()
    if isinstance(act, nn.Module):
        return act
    try:
        return ACTIVATIONS[act]()
    except KeyError:
        from gradpath.errors import GradpathError, suggest

        raise GradpathError(f"unknown activation {act!r}.{suggest(act, ACTIVATIONS)}") from None


def autopad(k: int, d: int = 1) -> int:
    """Padding that keeps the spatial size at stride 1 (odd kernels)."""
    return d * (k - 1) // 2


class _PackedBNBackward(torch.autograd.Function):
    """Training-mode batch norm on a channels-last CPU tensor whose backward runs on a "packed" 2-D view.

    Why: PyTorch's channels-last BN backward vectorises along C only; for the narrow layers of a width-scaled
    YOLO (C = 24, 40, 72 … not a multiple of the 16-float vector) it runs 2-4x slower than on NCHW and was the
    second-largest cost of a training step (benchmarks/bench_train.py). Viewing the NHWC memory as
    (N·H·W/p, p·C) rows, p·C a multiple of 16, lets the per-channel sums run vectorised (eval-mode native kernel
    on p copies of each channel, then folded), and the input gradient is two fused multiply-adds. Same
    formula as the native kernel (sums in another order: ~1e-6 relative):
    dx = γ·σ⁻¹·(dy − mean(dy) − x̂·mean(dy·x̂)), dγ = Σ dy·x̂, dβ = Σ dy.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum: float, eps: float, pack: int):
        y, mean, invstd = torch.native_batch_norm(x, weight, bias, running_mean, running_var, True, momentum, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.pack = pack
        return y

    @staticmethod
    def backward(ctx, g):
        x, w, mean, invstd = ctx.saved_tensors
        n, c, h, wd = x.shape
        p, rows = ctx.pack, n * h * wd
        g2 = g.permute(0, 2, 3, 1).reshape(rows // p, p * c)  # a view when g is channels-last
        x2 = x.permute(0, 2, 3, 1).reshape(rows // p, p * c)
        _, gw, gb = torch.ops.aten.native_batch_norm_backward(
            g2[:, :, None], x2[:, :, None], torch.ones_like(mean).repeat(p), mean.repeat(p),
            invstd.pow(-2).repeat(p), None, None, False, 0.0, [False, True, True])
        sum_gxhat, sum_g = gw.view(p, c).sum(0), gb.view(p, c).sum(0)
        k = w * invstd
        a = -k * invstd * sum_gxhat / rows  # dx = k·dy + a·x + b
        b = -k * sum_g / rows - a * mean
        dx = torch.addcmul(b.repeat(p), x2, a.repeat(p)).addcmul_(g2, k.repeat(p))
        return dx.view(n, h, wd, c).permute(0, 3, 1, 2), sum_gxhat, sum_g, None, None, None, None, None


def packed_bn_rows(bn: nn.Module, x: torch.Tensor) -> int:
    """Rows packed per view row by :func:`batch_norm_packed` for ``bn(x)`` (0: use the native kernel)."""
    if not (type(bn) is nn.BatchNorm2d and bn.training and bn.affine and bn.track_running_stats and x.dim() == 4
            and x.device.type == "cpu" and x.dtype == torch.float32 and x.numel() >= 1 << 16
            and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()):
        return 0
    c = x.shape[1]
    p = 16 // math.gcd(c, 16)
    return p if p > 1 and (x.numel() // c) % p == 0 else 0


def batch_norm_packed(bn: nn.BatchNorm2d, x: torch.Tensor, pack: int) -> torch.Tensor:
    """``bn(x)`` in training mode (same output and running statistics) with the packed backward."""
    bn.num_batches_tracked.add_(1)
    momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
    return _PackedBNBackward.apply(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, momentum, bn.eps, pack)


class ConvBNAct(nn.Module):
    """Conv2d(bias=False) + BatchNorm2d + activation; one gradient-path *unit*.

    ``bn=False`` gives a conv with bias (used by classifier and detection output convs).
    BN defaults follow YOLOv5 (eps 1e-3, momentum 0.03).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        k: int = 1,
        s: int = 1,
        p: int | None = None,
        groups: int = 1,
        act: str | None | nn.Module = "silu",
        bn: bool = True,
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.03,
    ) -> None:
        super().__init__()
        if in_chs % groups or out_chs % groups:
            from gradpath.errors import GradpathError

            raise GradpathError(f"ConvBNAct: channels {in_chs}->{out_chs} not divisible by groups={groups}")
        self.in_channels = in_chs
        self.out_channels = out_chs
        self.conv = nn.Conv2d(in_chs, out_chs, k, s, autopad(k) if p is None else p, groups=groups, bias=not bn)
        self.bn = nn.BatchNorm2d(out_chs, eps=bn_eps, momentum=bn_momentum) if bn else nn.Identity()
        self.act = make_act(act)
        # decided once: the forward below runs an in-place SiLU out of place under autograd
        self._silu_inplace = type(self.act) is nn.SiLU and self.act.inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if isinstance(y, torch.fx.Proxy):  # symbolic tracing (gradpath.analysis) sees the plain modules
            return self.act(self.bn(y))
        pack = packed_bn_rows(self.bn, y)
        y = batch_norm_packed(self.bn, y, pack) if pack else self.bn(y)
        if self._silu_inplace and y.requires_grad and torch.is_grad_enabled():
            # autograd differentiates silu_ through its input, so an in-place SiLU under grad first clones it
            # (an extra read+write of every activation); out of place here, as ultralytics' SiLU (~2.5% of a
            # training step, benchmarks/bench_train.py). In place at inference: no allocation.
            return F.silu(y)
        return self.act(y)

    @torch.no_grad()
    def fuse(self) -> "ConvBNAct":
        """Fold BN into the conv in place (inference only); idempotent."""
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = fuse_conv_bn(self.conv, self.bn)
            self.bn = nn.Identity()
        return self


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv equal to bn(conv(x)) in eval mode: W' = W·γ/σ, b' = (b − μ)·γ/σ + β."""
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
        device=conv.weight.device, dtype=conv.weight.dtype,
    ).requires_grad_(False)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    if conv.weight.dim() == 4 and conv.weight.is_contiguous(memory_format=torch.channels_last) \
            and not conv.weight.is_contiguous():
        fused = fused.to(memory_format=torch.channels_last)  # keep a channels-last model channels-last
    return fused


def fuse_model(model: nn.Module) -> nn.Module:
    """Fold every ConvBNAct's BN (deploy form). Returns the same model, in eval mode."""
    model.eval()
    for m in model.modules():
        if isinstance(m, ConvBNAct):
            m.fuse()
    return model


def to_channels_last(model: nn.Module) -> nn.Module:
    """Store every 4-D weight NHWC (in place; returns ``model``), so CPU convolutions run without reorders.

    Why: oneDNN's CPU convolution works in a blocked/NHWC layout; on NCHW tensors every conv (and its backward)
    reorders its input and output, and full-resolution stems (YOLOv7/ELAN: a 3×3 at stride 1 on the input,
    paper Table 8 skeleton) spend as long reordering as computing. A conv whose weight is channels-last produces
    channels-last output, so the whole network follows without touching the inputs. Numerics are those of a
    different (equally exact) conv algorithm; FLOPs and parameters are unchanged.
    """
    return model.to(memory_format=torch.channels_last)
