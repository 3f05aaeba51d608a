"""SegmentLoss: hand-checked target assignment and mask loss, and a tiny overfit that must drive the loss down."""
from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import box_convert, box_iou

from gradpath.errors import GradpathError
from gradpath.hyp import SegmentHyp, segment_hyp
from gradpath.tasks.segment import SegmentLoss, non_max_suppression, process_masks


def _feats(model, S):
    model.train()
    return model(torch.zeros(1, 3, S, S))[0]


def test_assignment_hand_case(tiny_model):
    """A 16-px box centred at grid (2.3, 5.7) on the stride-8 level of a 64-px image.

    Level 0 (8×8 grid, anchors 1.25×1.625, 2×3.75, 4.125×2.875 cells): the 2×2-cell box is within ratio 4 of all
    three anchors; x frac 0.3 < 0.5 adds the left cell, (8 − 5.7) frac 0.3 < 0.5 adds the cell below.
    Level 1 (4×4, box 1×1 cell at (1.15, 2.85)): anchors 0 and 1 match (worst ratio 3.81 and 3.875), anchor 2
    (3.69×7.44) does not; neighbours left (x frac .15) and below ((4 − 2.85) frac .15).
    Level 2 (2×2, box 0.5×0.5): every anchor is more than 4× larger → nothing.
    """
    loss = SegmentLoss(tiny_model)
    feats = _feats(tiny_model, 64)
    t = torch.tensor([[0, 1, 2.3 / 8, 5.7 / 8, 0.25, 0.25]])
    tcls, tbox, indices, anch, tidx, xywhn = loss.build_targets(feats, t)

    def cells(i):
        b, a, gj, gi = indices[i]
        return sorted(zip(a.tolist(), gj.tolist(), gi.tolist()))

    assert cells(0) == sorted((a, gj, gi) for a in range(3) for gj, gi in [(5, 2), (5, 1), (6, 2)])
    assert cells(1) == sorted((a, gj, gi) for a in range(2) for gj, gi in [(2, 1), (2, 0), (3, 1)])
    assert cells(2) == []
    # offsets inside the chosen cell and the box size, in grid units
    b, a, gj, gi = indices[0]
    k = ((gi == 1) & (gj == 5) & (a == 0)).nonzero().item()
    torch.testing.assert_close(tbox[0][k], torch.tensor([1.3, 0.7, 2.0, 2.0]))
    torch.testing.assert_close(anch[0][k], torch.tensor([10 / 8, 13 / 8]))
    assert set(tcls[0].tolist()) == {1} and set(tidx[0].tolist()) == {0} and set(b.tolist()) == {0}
    torch.testing.assert_close(xywhn[1][0], t[0, 2:])


def test_assignment_no_targets(tiny_model):
    loss = SegmentLoss(tiny_model)
    out = loss.build_targets(_feats(tiny_model, 64), torch.zeros(0, 6))
    assert all(len(x[0]) == 0 for x in out[2])


def test_mask_loss_hand_value():
    """Logits 0 → BCE = ln 2 at each pixel; a 2×2 box on a 4×4 grid keeps 4/16 of it; area 0.25 → ln 2.
    A second, perfectly predicted instance (logit 20 on a positive mask: BCE ≈ 2e-9) halves the image's mean."""
    proto = torch.ones(1, 4, 4)
    box, area = torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([0.25])
    v = SegmentLoss._mask_loss(torch.zeros(1, 4, 4), torch.zeros(1, 1), proto, box, area)
    assert math.isclose(v.item(), math.log(2), rel_tol=1e-6)
    gt = torch.stack((torch.zeros(4, 4), torch.ones(4, 4)))
    v2 = SegmentLoss._mask_loss(gt, torch.tensor([[0.0], [20.0]]), proto, box.repeat(2, 1), area.repeat(2))
    assert math.isclose(v2.item(), math.log(2) / 2, rel_tol=1e-6)


def test_loss_items_and_scaling(tiny_model, tiny_batch):
    img, targets, masks = tiny_batch
    tiny_model.train()
    loss_fn = SegmentLoss(tiny_model)
    loss, items = loss_fn(tiny_model(img), targets, masks)
    assert loss.ndim == 0 and items.shape == (4,) and not items.requires_grad
    assert torch.isfinite(loss) and (items > 0).all()
    torch.testing.assert_close(loss.detach(), items.sum() * img.shape[0])
    loss.backward()
    assert tiny_model.head.proto.net[0].weight.grad.abs().sum() > 0  # the mask loss reaches the prototypes


def test_loss_without_targets_is_objectness_only(tiny_model):
    tiny_model.train()
    loss, items = SegmentLoss(tiny_model)(tiny_model(torch.rand(2, 3, 64, 64)), torch.zeros(0, 6),
                                          torch.zeros(0, 16, 16))
    assert torch.isfinite(loss) and items[0] == 0 and items[1] == 0 and items[3] == 0 and items[2] > 0


def test_loss_decreases_when_overfitting(tiny_model, tiny_batch):
    img, targets, masks = tiny_batch
    tiny_model.train()
    loss_fn = SegmentLoss(tiny_model)
    opt = torch.optim.Adam(tiny_model.parameters(), lr=3e-3)
    history = []
    for _ in range(40):
        loss, items = loss_fn(tiny_model(img), targets, masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(items)
    first, last = history[0], history[-1]
    assert torch.isfinite(torch.stack(history)).all()
    assert last.sum() < 0.5 * first.sum(), (first, last)
    assert last[1] < first[1] and last[0] < first[0]  # mask and box terms both learn


def test_overfit_then_decode_finds_the_objects(tiny_model, tiny_batch):
    """The loss's conventions (cell offsets, anchor units, objectness, class and mask targets) must agree with the
    eval decoding (the detector interface of gradpath/models/detect.py) and NMS: after overfitting, each object
    is found with its class, box and mask."""
    img, targets, masks = tiny_batch
    torch.manual_seed(0)
    loss_fn = SegmentLoss(tiny_model)
    opt = torch.optim.Adam(tiny_model.parameters(), lr=1e-2)
    for _ in range(100):
        tiny_model.train()
        loss, _ = loss_fn(tiny_model(img), targets, masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
    tiny_model.eval()
    with torch.no_grad():
        pred, proto = tiny_model(img)
    dets = non_max_suppression(pred, conf_thres=0.1, iou_thres=0.5, nm=8)
    for n, t in enumerate(targets):
        d = dets[int(t[0])]
        d = d[d[:, 5] == t[1]]
        assert len(d), f"object {n} (class {int(t[1])}) not found"
        gt_box = box_convert(t[None, 2:] * 64, "cxcywh", "xyxy")
        iou = box_iou(gt_box, d[:, :4])[0]
        assert iou.max() > 0.6, (n, iou)
        best = d[iou.argmax()]
        pm = process_masks(proto[int(t[0])], best[None, 6:], best[None, :4], (64, 64))[0]
        gm = torch.nn.functional.interpolate(masks[n][None, None].float(), (64, 64))[0, 0] > 0
        assert (pm & gm).sum() / (pm | gm).sum() > 0.6


def test_hyp_keys_are_checked_not_skipped(tiny_model):
    """Regression: the loss used to skip keys it did not know, so a typo such as
    ``mosiac`` was silently ignored. It now reads the one typed ``SegmentHyp``; an augmentation key is valid (the
    dataset reads it), a typo is refused, and the anchor ratio limit of 4 vs 2 changes the hand case above."""
    with pytest.raises(GradpathError, match=r"unknown hyp 'mosiac'\. Did you mean: mosaic\?"):
        SegmentLoss(tiny_model, {"mosiac": 0.5})
    assert SegmentLoss(tiny_model, {"mosaic": 0.5, "cls": 0.3}).hyp == segment_hyp({"mosaic": 0.5, "cls": 0.3})
    feats = _feats(tiny_model, 64)
    t = torch.tensor([[0, 1, 2.3 / 8, 5.7 / 8, 0.25, 0.25]])
    # level 1 anchors 0 and 1 have worst ratios 3.81 and 3.875 (see test_assignment_hand_case): in at 4, out at 3.5
    assert SegmentLoss(tiny_model, {"anchor_t": 4.0}).build_targets(feats, t)[2][1][0].numel() == 6
    assert SegmentLoss(tiny_model, SegmentHyp(anchor_t=3.5)).build_targets(feats, t)[2][1][0].numel() == 0
