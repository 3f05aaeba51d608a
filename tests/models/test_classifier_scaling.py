"""Table 2 classifiers: width/depth multipliers (1.0 keeps the paper's counts, tests/test_zoo.py), CPU-sized
versions that build, take any input that divides by 32, and train."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from gradpath.errors import GradpathError
from gradpath.experiments.zoo import measure
from gradpath.models import create_model

CLASSIFIERS = ("darknet53", "csp-darknet53", "resnet50", "csp-resnet50", "resnext50", "csp-resnext50")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_scaled_darknet53_weights_hand_count():
    """width 0.25 → stage widths 8/16/32/64/128/256; depth 0.34 → 1/1/3/3/1 residual blocks (round(n·0.34), ≥ 1).
    Conv/linear weights: stem 3·8·9 = 216; per stage a 3×3 s2 down (cin·cout·9) and blocks RB(C, C/2) of
    C·C/2 + C/2·C·9 = 5C²; classifier 256·1000."""
    down = sum(a * b * 9 for a, b in ((8, 16), (16, 32), (32, 64), (64, 128), (128, 256)))
    blocks = sum(n * 5 * c * c for c, n in ((16, 1), (32, 1), (64, 3), (128, 3), (256, 1)))
    expected = 216 + down + blocks + 256 * 1000
    assert expected == 1_290_328
    assert round(measure("darknet53", width=0.25, depth=0.34)["params_m"] * 1e6) == expected


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_scaled_classifier_is_aligned_sized_and_trains(name):
    torch.manual_seed(0)
    model = create_model(name, width=0.25, depth=0.34, num_classes=10)
    assert model.gradpath_config.width == 0.25 and model.head.fc.out_features == 10
    for conv in (m for m in model.modules() if isinstance(m, nn.Conv2d)):
        if conv.in_channels != 3:  # every width but the image's is a multiple of 8 (and of a grouped conv's groups)
            assert conv.in_channels % 8 == 0 and conv.out_channels % 8 == 0, conv
    assert sum(p.numel() for p in model.parameters()) < 2_000_000  # CPU-sized (full size: 20-42 M)
    model.eval()
    with torch.no_grad():
        for size in (64, 96, 128):  # any multiple of the stride 32
            assert model(torch.rand(1, 3, size, size)).shape == (1, 10)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    loss = nn.functional.cross_entropy(model(x), y)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(torch.log(torch.tensor(10.0)).item(), abs=1.5)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    opt.step()
    changed = [k for k, v in model.named_parameters() if not torch.equal(v, before[k])]
    assert len(changed) == len(before)


def test_scale_is_validated():
    with pytest.raises(GradpathError, match="width and depth"):
        create_model("darknet53", width=0.0)
    with pytest.raises(GradpathError, match="fusion"):
        create_model("csp-darknet53", fusion="firts")
