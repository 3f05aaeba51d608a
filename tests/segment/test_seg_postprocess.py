"""NMS, mask crop/decoding and the way back to original coordinates, against hand computations."""
from __future__ import annotations

import torch

from gradpath.tasks.segment import crop_mask, masks_to_original, non_max_suppression, process_masks, scale_boxes


def _row(cx, cy, w, h, obj, cls, coefs):
    return [cx, cy, w, h, obj, *cls, *coefs]


def _pred():
    # nc = 2, nm = 2. A and B overlap with IoU 18*20 / (400 + 400 - 360) = 0.818.
    rows = [
        _row(50, 50, 20, 20, 0.9, (0.8, 0.1), (1.0, 2.0)),   # A: class 0, conf 0.72
        _row(52, 50, 20, 20, 0.8, (0.5, 0.0), (3.0, 4.0)),   # B: class 0, conf 0.40 (suppressed by A)
        _row(52, 50, 20, 20, 0.9, (0.1, 0.7), (5.0, 6.0)),   # C: class 1, conf 0.63 (other class: kept)
        _row(150, 150, 10, 10, 0.5, (0.002, 0.001), (7.0, 8.0)),  # D: conf 0.001 < threshold
        _row(10, 10, 10, 10, 0.01, (0.9, 0.9), (9.0, 9.0)),  # E: obj below threshold
    ]
    return torch.tensor([rows])


def test_nms_hand_case():
    (d,) = non_max_suppression(_pred(), conf_thres=0.05, iou_thres=0.6, nm=2)
    expected = torch.tensor([[40, 40, 60, 60, 0.72, 0, 1, 2], [42, 40, 62, 60, 0.63, 1, 5, 6]])
    torch.testing.assert_close(d, expected)
    # multi-label adds A as class 1 (0.09) and C as class 0 (0.09): each overlaps a stronger box of that class
    (d_ml,) = non_max_suppression(_pred(), conf_thres=0.05, iou_thres=0.6, nm=2, multi_label=True)
    torch.testing.assert_close(d_ml, expected)
    # IoU 0.818 < 0.9: B survives, ranked after A and C
    (d_hi,) = non_max_suppression(_pred(), conf_thres=0.05, iou_thres=0.9, nm=2)
    torch.testing.assert_close(d_hi[:, 4], torch.tensor([0.72, 0.63, 0.40]))
    assert d_hi[2, 6:].tolist() == [3.0, 4.0]
    # class-agnostic: C (0.63) now overlaps A (0.72) → gone
    (d_ag,) = non_max_suppression(_pred(), conf_thres=0.05, iou_thres=0.6, nm=2, agnostic=True)
    assert d_ag.shape[0] == 1 and d_ag[0, 5] == 0


def test_nms_empty_and_max_det():
    pred = torch.zeros(2, 10, 5 + 2 + 2)
    out = non_max_suppression(pred, 0.25, 0.6, nm=2)
    assert len(out) == 2 and all(o.shape == (0, 8) for o in out)
    (d,) = non_max_suppression(_pred(), conf_thres=0.05, iou_thres=0.9, nm=2, max_det=1)
    assert d.shape[0] == 1


def test_crop_mask():
    m = torch.ones(2, 6, 6)
    out = crop_mask(m, torch.tensor([[1.5, 2.0, 4.0, 5.0], [0.0, 0.0, 6.0, 6.0]]))
    # a border that float rounding puts a hair inside still keeps the pixel whose centre is in the box
    assert crop_mask(torch.ones(1, 1, 4), torch.tensor([[0.0, 0.0, 2.99999, 1.0]])).sum() == 3
    expected = torch.zeros(6, 6)
    expected[2:5, 1:4] = 1  # pixel centres in the box: columns 1, 2, 3 (1.5 <= c + .5 < 4), rows 2, 3, 4
    torch.testing.assert_close(out[0], expected)
    assert out[1].sum() == 36


def test_process_masks_crop_then_upsample():
    """Box [4, 12) on a 16-px canvas = prototype pixels 1, 2; bilinear ×4 upsampling of that step crosses 0.5
    exactly at canvas pixels 4 and 11 (weights (y + .5)/4 − .5 = 0.625 and 2.375). At the four corners the two
    weights multiply: 0.625² · σ(5) = 0.388 < 0.5, so the corners are rounded off; next to them
    0.625 · 0.875 · σ(5) = 0.543 stays."""
    proto = torch.ones(1, 4, 4)
    m = process_masks(proto, torch.tensor([[5.0]]), torch.tensor([[4.0, 4.0, 12.0, 12.0]]), (16, 16))
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[4:12, 4:12] = True
    expected[[4, 4, 11, 11], [4, 11, 4, 11]] = False
    assert m.dtype == torch.bool and torch.equal(m[0], expected)
    small = process_masks(proto, torch.tensor([[5.0]]), torch.tensor([[4.0, 4.0, 12.0, 12.0]]), (16, 16),
                          upsample=False)
    assert small.shape == (1, 4, 4) and small[0].sum() == 4
    neg = process_masks(proto, torch.tensor([[-5.0]]), torch.tensor([[0.0, 0.0, 16.0, 16.0]]), (16, 16))
    assert not neg.any()


def test_scale_boxes_and_native_masks():
    """A 100×50 (w×h) image letterboxed into 64×64: gain 0.64, padded 16 rows top and bottom."""
    ratio_pad = ((0.64, 0.64), (0.0, 16.0))
    canvas_box = torch.tensor([[6.4, 22.4, 32.0, 41.6]])
    torch.testing.assert_close(scale_boxes(canvas_box, ratio_pad, (50, 100)), torch.tensor([[10.0, 10.0, 50.0, 40.0]]))
    # clipping to the image
    torch.testing.assert_close(scale_boxes(torch.tensor([[-5.0, 0.0, 70.0, 64.0]]), ratio_pad, (50, 100)),
                               torch.tensor([[0.0, 0.0, 100.0, 50.0]]))
    proto = torch.ones(1, 16, 16)
    orig_box = torch.tensor([[10.0, 10.0, 50.0, 40.0]])
    chunks = list(masks_to_original(proto, torch.tensor([[3.0]]), orig_box, (64, 64), ratio_pad, (50, 100)))
    assert len(chunks) == 1 and chunks[0].shape == (1, 50, 100)
    expected = torch.zeros(50, 100, dtype=torch.bool)
    expected[10:40, 10:50] = True
    assert torch.equal(chunks[0][0], expected)
    many = list(masks_to_original(proto, torch.ones(5, 1), orig_box.repeat(5, 1), (64, 64), ratio_pad, (50, 100),
                                  chunk=2))
    assert [c.shape[0] for c in many] == [2, 2, 1]
