"""Weight decay reaches conv/linear filters only: never BN, biases or YOLOR's implicit vectors (issue: ImplicitA/M
of shape (1, C, 1, 1) used to land in the decay group, pulling ImplicitM's scale from 1 towards 0)."""
from __future__ import annotations

import torch
from torch import nn

from gradpath.engine.optim import build_optimizer, param_groups
from gradpath.models import create_model
from gradpath.nn.implicit import ImplicitA, ImplicitM


def test_implicit_vectors_are_not_decayed():
    m = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), ImplicitA(4), ImplicitM(4))
    groups = {g["group"]: g for g in param_groups(m, 0.05)}
    assert [p.shape for p in groups["decay"]["params"]] == [torch.Size([4, 3, 1, 1])]
    no_decay = groups["no_decay"]["params"]
    assert len(no_decay) == 2 and no_decay[0] is m[1].implicit and no_decay[1] is m[2].implicit
    assert groups["no_decay"]["weight_decay"] == 0.0
    # one SGD step with zero gradient: a decayed ImplicitM would shrink by lr·wd·m; an undecayed one stays put
    opt = build_optimizer(m, "sgd", lr0=0.1, momentum=0.9, weight_decay=0.05)
    before = m[2].implicit.detach().clone()
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    assert torch.equal(m[2].implicit, before)


def test_yolor_model_implicit_parameters_all_undecayed():
    """Every implicit vector of a YOLOR detector (3 ImplicitA + 3 ImplicitM in ISegment) is in no_decay, and the
    decay group holds exactly the conv weights."""
    with torch.device("meta"):
        model = create_model("yolor-elan", width=0.125, depth=0.34, num_classes=3)
    groups = {g["group"]: g for g in param_groups(model, 5e-4)}
    implicit = {id(mod.implicit) for mod in model.modules() if isinstance(mod, (ImplicitA, ImplicitM))}
    assert len(implicit) == 6
    assert implicit <= {id(p) for p in groups["no_decay"]["params"]}
    conv_weights = {id(mod.weight) for mod in model.modules() if isinstance(mod, nn.Conv2d)}
    assert {id(p) for p in groups["decay"]["params"]} == conv_weights
