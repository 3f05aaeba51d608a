"""Rectangular validation batches (YOLOv5's rect, pad 0.5): hand-computed canvases, offsets and boxes, and the
collate fallback that pads differently-shaped items to one canvas."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gradpath.data import build_dataset, collate_fn
from gradpath.errors import GradpathError

# (h, w, label): a box centred in each image, half its width and height
ITEMS = {"wide.png": (50, 100, "0 0.5 0.5 0.5 0.5\n"), "square.png": (64, 64, "1 0.5 0.5 0.5 0.5\n"),
         "tall.png": (80, 40, "0 0.5 0.5 0.5 0.5\n")}


@pytest.fixture
def rect_ds(yolo_factory):
    return build_dataset(yolo_factory(ITEMS, ["x", "y"]), "val", imgsz=64, rect=True, batch_size=2)


def test_batches_sorted_by_aspect_ratio_with_their_canvas(rect_ds):
    """Aspect ratios h/w: wide 0.5, square 1, tall 2. Batch [wide, square] spans 0.5..1: square, ceil(64/32 +
    0.5) * 32 = 96. Batch [tall]: w/h 0.5 -> (64, 32) at 64, +16 px margin each, rounded up to 32: (96, 64)."""
    assert [r.file.name for r in rect_ds.records] == ["wide.png", "square.png", "tall.png"]
    assert rect_ds.shapes == [(96, 96), (96, 96), (96, 64)]
    wide, square, tall = (rect_ds[i] for i in range(3))
    # wide 100x50 -> gain 0.64 -> 64x32 centred on 96x96: left 16, top 32
    assert wide["img"].shape == (3, 96, 96) and wide["ratio_pad"] == ((0.64, 0.64), (16.0, 32.0))
    assert tall["img"].shape == (3, 96, 64) and tall["ratio_pad"] == ((0.8, 0.8), (16.0, 16.0))
    assert tall["masks"].shape == (1, 24, 16)
    assert (tall["img"][:, :16] == 114).all() and (tall["img"][:, 80:] == 114).all()
    assert not (tall["img"][:, 16:80, 16:48] == 114).all()
    # boxes back through ratio_pad are the original boxes: wide's (25, 12.5, 75, 37.5), tall's (10, 20, 30, 60)
    for item, orig in [(wide, [25, 12.5, 75, 37.5]), (tall, [10, 20, 30, 60])]:
        H, W = item["img"].shape[1:]
        cx, cy, w, h = (item["boxes"][0] * torch.tensor([W, H, W, H])).tolist()
        (g, _), (pw, ph) = item["ratio_pad"]
        got = [(cx - w / 2 - pw) / g, (cy - h / 2 - ph) / g, (cx + w / 2 - pw) / g, (cy + h / 2 - ph) / g]
        np.testing.assert_allclose(got, orig, atol=1e-4)


def test_collate_pads_mixed_shapes(rect_ds):
    wide, tall = rect_ds[0], rect_ds[2]
    batch = collate_fn([wide, tall])
    assert batch["img"].shape == (2, 3, 96, 96) and batch["masks"].shape == (2, 24, 24)
    assert torch.equal(batch["img"][1, :, :, :64], tall["img"]) and (batch["img"][1, :, :, 64:] == 114).all()
    # tall's box (16 + 8, 16 + 16, 16 + 24, 16 + 48) px = x 24..40, y 32..64 on the padded 96 x 96 canvas
    np.testing.assert_allclose(batch["targets"][1].tolist(), [1, 0, 32 / 96, 48 / 96, 16 / 96, 32 / 96], atol=1e-6)
    assert batch["ratio_pads"][1] == ((0.8, 0.8), (16.0, 16.0))
    same = collate_fn([rect_ds[0], rect_ds[1]])
    assert same["img"].shape == (2, 3, 96, 96)


def test_rect_refuses_augmentation(yolo_factory):
    with pytest.raises(GradpathError, match="rect batches are for validation"):
        build_dataset(yolo_factory(ITEMS, ["x", "y"]), "train", imgsz=64, augment=True, rect=True)
