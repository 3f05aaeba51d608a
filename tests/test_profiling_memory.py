"""Activation-memory peaks against hand-counted bytes (float32 = 4 bytes, int64 = 8).

The tracker sees every torch function's output and, with autograd on, every tensor saved for backward; a storage
leaves the live set when it is freed. These cases pin what counts (outputs, saved internals such as max-pool
indices and BatchNorm statistics) and what does not (parameters, buffers, the input, views of any of them).
"""
import pytest
import torch
from torch import nn

from gradpath.profiling import _peak_forward_bytes, activation_memory


def _bytes(model: nn.Module, imgsz: int, batch: int = 1) -> tuple[float, float]:
    mem = activation_memory(model, imgsz, batch)
    return mem["act_mem_infer_mb"] * 2**20, mem["act_mem_train_mb"] * 2**20


def test_conv_bn_silu():
    # one map = 8 ch x 4 x 4 x 4 B = 512 B. Inference: conv out and BN out alive together while BN runs.
    # Training: conv out (saved by BN), BN out (saved by SiLU), SiLU out, BN's batch mean and inv-std (2 x 8 x 4 B).
    m = nn.Sequential(nn.Conv2d(3, 8, 1, bias=False), nn.BatchNorm2d(8), nn.SiLU())
    assert _bytes(m, 4) == (2 * 512, 3 * 512 + 64)


def test_max_pool_indices_count_in_training():
    # conv out 4 x 8 x 8 x 4 B = 1024, pooled 4 x 4 x 4 x 4 B = 256; training also keeps the int64 indices
    # (4 x 4 x 4 x 8 B = 512) that max_pool2d creates internally and never returns.
    m = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.MaxPool2d(2))
    assert _bytes(m, 8) == (1024 + 256, 1024 + 256 + 512)


def test_functional_ops_are_tracked():
    class MulCat(nn.Module):
        def forward(self, x):
            a = x * 2
            return torch.cat([a, a], 1)

    # a = 3 x 4 x 4 x 4 B = 192 B, alive while cat writes its 384 B; no parameters, so no graph in training
    assert _bytes(MulCat(), 4) == (192 + 384, 192 + 384)


def test_views_and_in_place_results_counted_once():
    class ConvReluView(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 1, bias=False)

        def forward(self, x):
            y = self.conv(x)
            y.relu_()
            return y.view(-1)[:5]

    assert _bytes(ConvReluView(), 4) == (512, 512)


def test_parameters_buffers_and_their_views_are_not_activations():
    # flatten is a view of the input (0 B); linear out 2 x 10 x 4 B = 80; BN out 80; BN statistics 2 x 10 x 4 = 80.
    # Not counted: the linear weight's transpose saved by addmm, BN's running stats and num_batches_tracked.
    m = nn.Sequential(nn.Flatten(), nn.Linear(48, 10), nn.BatchNorm1d(10))
    assert _bytes(m, 4, batch=2) == (80 + 80, 80 + 80 + 80)


def test_meta_copy_measures_what_real_tensors_use():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.SiLU())
            self.b = nn.Conv2d(8, 8, 1)
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):
            y = self.a(x)
            return self.pool(torch.cat([y, self.b(y) + y], 1))

    m = Branchy()
    infer, train = _bytes(m, 16)
    x = torch.zeros(1, 3, 16, 16)
    assert _peak_forward_bytes(m.eval(), x, grad=False) == infer
    assert _peak_forward_bytes(m.train(), x, grad=True) == train
    # hand count, one map = 8 x 16 x 16 x 4 B = 8192 B (M). Inference peak while cat runs: y, b(y)+y, cat (2M).
    assert infer == 4 * 8192
    # training, peak in the pool: what backward keeps (conv out, BN out, y, the cat 2M, pooled M/2, int64 indices M,
    # BN stats 64 B); b(y) and b(y)+y are saved by nothing (add and cat need no inputs) and are already freed
    assert train == 6.5 * 8192 + 64


def test_grad_mode_restored_and_errors_propagate():
    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("bug in forward")

    with torch.no_grad():
        activation_memory(nn.Sequential(nn.Conv2d(3, 4, 1)), 4)
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    with pytest.raises(ValueError, match="bug in forward"):
        activation_memory(Broken(), 4)
    assert torch.is_grad_enabled()
