"""One naming rule for units (``gradpath/analysis/naming.py``) on torchvision models, and the ``module`` field
that maps every unit back to ``named_modules()``."""
import pytest
import torch
import torchvision
from torch import nn

from gradpath.analysis import analyze


def units(rep):
    return {u["id"]: u["module"] for u in rep.to_dict()["units"]}


@pytest.mark.parametrize("backend", ["fx", "autograd"])
def test_conv2d_norm_activation_is_named_as_the_wrapper(backend):
    model = torchvision.models.mobilenet_v2()
    got = units(analyze(model, torch.randn(1, 3, 32, 32), backend=backend))
    # features.0 = Conv2dNormActivation(conv, bn, relu6): the wrapper's name; the conv is its child 0
    assert got["features.0"] == "features.0.0"
    # an inverted residual's expand conv (features.2.conv.0 is a Conv2dNormActivation) and its bare 1x1
    # projection conv, whose BN is a sibling in the same Sequential: that Sequential holds other layers, so
    # the conv keeps its own name
    assert got["features.2.conv.0"] == "features.2.conv.0.0"
    assert got["features.2.conv.2"] == "features.2.conv.2"
    assert got["classifier.1"] == "classifier.1"  # Linear after Dropout: its own name
    modules = dict(model.named_modules())
    assert len(got) == 53 and all(isinstance(modules[m], (nn.Conv2d, nn.Linear)) for m in got.values())


@pytest.mark.parametrize("backend", ["fx", "autograd"])
def test_sequential_conv_bn_is_named_as_the_wrapper(backend):
    model = torchvision.models.resnet18()
    got = units(analyze(model, torch.randn(1, 3, 32, 32), backend=backend))
    assert got["layer2.0.downsample"] == "layer2.0.downsample.0"  # Sequential(conv, bn)
    assert got["layer1.0.conv1"] == "layer1.0.conv1"  # BasicBlock holds other layers: the conv's own name
    assert got["conv1"] == "conv1" and got["fc"] == "fc"
    modules = dict(model.named_modules())
    assert len(got) == 21 and all(isinstance(modules[m], (nn.Conv2d, nn.Linear)) for m in got.values())


def test_norm_count_names_every_layer_itself():
    model = torchvision.models.resnet18()
    got = units(analyze(model, torch.randn(1, 3, 32, 32), norm="count"))
    # the norm is not merged, so the wrapper holds two parameterised layers and neither is named after it
    assert got["layer2.0.downsample.0"] == "layer2.0.downsample.0"
    assert got["layer2.0.downsample.1"] == "layer2.0.downsample.1"
    assert len(got) == 21 + 20  # 20 BatchNorm2d units
