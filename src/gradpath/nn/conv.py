"""Conv → BatchNorm → activation, the unit every network of the paper is built from.

Shapes: (N, in_chs, H, W) → (N, out_chs, ceil(H/stride), ceil(W/stride)) with "same" padding.
For deployment ``fuse()`` folds BN into the conv (as YOLOv5's ``model.fuse()`` does), which is also the
model the paper's parameter counts refer to (docs/counting.md).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from gradpath.errors import GradpathError, suggest

# ReLU and leaky ReLU run in place: their backward reads the output, so autograd keeps no extra copy. SiLU and
# Mish run out of place: their backward reads the input, and an in-place call under autograd makes autograd clone
# that input first (an extra read and write of every activation while training, ultralytics' choice too).
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "silu": nn.SiLU,
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky": lambda: nn.LeakyReLU(0.1, inplace=True),
    "mish": nn.Mish,
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
        raise GradpathError(f"unknown activation {act!r}.{suggest(act, ACTIVATIONS)}") from None


def autopad(k: int, d: int = 1) -> int:
    """Padding that keeps the spatial size at stride 1 (odd kernels)."""
    return d * (k - 1) // 2


class ConvBNAct(nn.Module):
    """Conv2d(bias=False) → norm → activation; one gradient-path *unit*.

    A plain composition of three public modules (as timm's ``ConvNormAct``), so forward hooks on each part, fx
    tracing, double backward and ``torch.func`` all see ordinary PyTorch. The parts keep the attribute names
    ``conv``/``bn``/``act`` whatever the norm is, so checkpoints keep their ``conv.weight``/``bn.*`` keys.

    Args:
        act: activation by name (see :func:`make_act`), an ``nn.Module`` instance, or None for linear.
        bn: False gives a conv with bias and no norm (classifier and detection output convs).
        bn_eps, bn_momentum: the default BatchNorm2d's, YOLOv5's values (eps 1e-3, momentum 0.03).
        norm_layer: ``norm_layer(out_chs) -> nn.Module`` instead of the default BatchNorm2d (e.g.
            ``functools.partial(nn.GroupNorm, 8)``); ``fuse()`` folds it only when it is a BatchNorm2d.
        act_layer: ``act_layer() -> nn.Module`` instead of ``act`` (e.g. ``nn.GELU``); give one or the other.
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
        *,
        norm_layer: Callable[[int], nn.Module] | None = None,
        act_layer: Callable[[], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if in_chs % groups or out_chs % groups:
            raise GradpathError(f"ConvBNAct: channels {in_chs}->{out_chs} not divisible by groups={groups}")
        if norm_layer is not None and not bn:
            raise TypeError("ConvBNAct: norm_layer given with bn=False; drop one of them")
        if act_layer is not None and act != "silu":
            raise TypeError("ConvBNAct: give act or act_layer, not both")
        self.in_channels = in_chs
        self.out_channels = out_chs
        self.conv = nn.Conv2d(in_chs, out_chs, k, s, autopad(k) if p is None else p, groups=groups, bias=not bn)
        if not bn:
            self.bn: nn.Module = nn.Identity()
        elif norm_layer is not None:
            self.bn = norm_layer(out_chs)
        else:
            self.bn = nn.BatchNorm2d(out_chs, eps=bn_eps, momentum=bn_momentum)
        self.act = act_layer() if act_layer is not None else make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> "ConvBNAct":
        """Fold a BatchNorm into the conv in place (inference only); idempotent. Other norms stay as they are."""
        if isinstance(self.bn, (nn.BatchNorm2d, nn.SyncBatchNorm)):
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
