"""Augmentation keeps image, boxes and masks aligned (letterbox, mosaic, affine, flip, HSV)."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from gradpath.data import augment as aug
from gradpath.data import build_dataset
from gradpath.data.images import letterbox_params
from gradpath.hyp import segment_hyp

RED = (255, 0, 0)


@pytest.fixture
def tri_data(tmp_path):
    """4 images (48 high, 64 wide) with 2 red triangles each on grey; the masks are the painted pixels."""
    root = tmp_path / "tri"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(4):
        img = np.full((48, 64, 3), 40, np.uint8)
        for _ in range(2):
            x, y = rng.uniform(4, 44), rng.uniform(4, 28)
            s = rng.uniform(10, 18)
            poly = [round(x, 2), round(y, 2), round(x + s, 2), round(y + 2, 2), round(x + s / 3, 2), round(y + s, 2)]
            m = mask_utils.decode(mask_utils.frPyObjects([poly], 48, 64))[..., 0].astype(bool)
            img[m] = RED
            ys, xs = np.nonzero(m)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "segmentation": [poly],
                         "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                  int(ys.max() - ys.min() + 1)]})
        Image.fromarray(img).save(root / "images" / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"{i}.png", "height": 48, "width": 64})
    (root / "ann.json").write_text(json.dumps({"images": images, "annotations": anns,
                                               "categories": [{"id": 1, "name": "tri"}]}))
    split = "{images: images, annotations: ann.json}"
    (root / "data.yaml").write_text(f"train: {split}\nval: {split}\n")
    return root / "data.yaml"


NO_COLOUR = {"hsv_h": 0, "hsv_s": 0, "hsv_v": 0}


def _mask_boxes(masks: torch.Tensor, stride: int) -> torch.Tensor:
    return aug.boxes_from_masks(masks) * stride


def test_letterbox_params_by_hand():
    assert letterbox_params(48, 64, 128) == (2.0, 96, 128, 0, 16)
    assert letterbox_params(100, 50, 64) == (0.64, 64, 32, 16, 0)


def test_box_candidates_yolov5_thresholds():
    """Hand cases of YOLOv5 v7.0's rule: w, h > 2 (strict), aspect < 100, kept area > area_thr."""
    before = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 60, 3], [0, 0, 300, 3], [0, 0, 100, 100],
                       [0, 0, 100, 100]], float)
    after = np.array([[0, 0, 2, 10], [0, 0, 2.5, 10], [0, 0, 60, 2.5], [0, 0, 300, 2.5], [0, 0, 9, 9],
                      [0, 0, 11, 11]], float)
    # w == 2 is out; 2.5 in; aspect 24 in (the old limit of 20 dropped it); aspect 120 out; 0.81% out, 1.21% in
    assert aug.box_candidates(before, after, area_thr=0.01).tolist() == [False, True, True, False, False, True]
    # box-only instances keep the detection threshold of 10%: 1.21% is out
    assert aug.box_candidates(before, after, area_thr=0.1).tolist() == [False, True, True, False, False, False]


def test_candidate_reference_is_clipped_to_the_canvas_not_the_tile():
    """Box (0, 0, 30, 20) placed at offset (-10, 5) -> (-10, 5, 20, 25); the canvas (64x64) clips it to
    (0, 5, 20, 25), the tile region (0, 0, 15, 15) does not; the affine (90 deg, scale 2) scales it by 2."""
    place = aug.Placement(aug.scale_translate(1.0, -10, 5), (0, 0, 15, 15))
    M = np.array([[0, -2, 7], [2, 0, 3], [0, 0, 1]], float)
    ref = aug.candidate_reference(np.array([[0, 0, 30, 20]], float), place, (64, 64), M)
    np.testing.assert_allclose(ref, [[0, 10, 40, 50]])


def test_thin_instance_survives_augmentation(yolo_factory):
    """Regression: a 56 x 2 px bar (aspect 28) was never a training target (aspect limit 20)
    while it stayed in the evaluation ground truth. Letterboxed 64 -> 128 without other geometry it is
    (8, 60, 120, 64) in canvas pixels."""
    poly = "0 0.0625 0.46875 0.9375 0.46875 0.9375 0.5 0.0625 0.5\n"  # x 4..60, y 30..32 of 64
    data = yolo_factory({"bar.png": (64, 64, poly)}, ["bar"])
    ds = build_dataset(data, "train", imgsz=128, augment=True,
                       hyp={**NO_COLOUR, "mosaic": 0.0, "scale": 0.0, "translate": 0.0, "fliplr": 0.0})
    item = ds[0]
    assert item["cls"].tolist() == [0.0]
    torch.testing.assert_close(item["boxes"] * 128, torch.tensor([[64.0, 62.0, 112.0, 4.0]]))
    # and the mask is there: 28 cells x 1 row of the 32 x 32 grid (cell centres at y 62 and x 10, 14, ..., 118)
    assert item["masks"].shape == (1, 32, 32) and item["masks"].sum() == 28 and item["masks"][0, 15].sum() == 28


@pytest.mark.parametrize("degrees", [0.0, 30.0])
def test_boxes_match_full_resolution_masks(degrees):
    """Placement + scale/translate (+ rotation): the instance box equals the tight box of the transformed
    full-resolution mask to within a pixel, also for instances cropped at the canvas edge."""
    rng = random.Random(0)
    h0, w0 = 40, 56
    polys = [[5, 5, 30, 8, 12, 30], [30, 20, 50, 22, 48, 38, 33, 36]]
    masks = np.stack([mask_utils.decode(mask_utils.frPyObjects([p], h0, w0))[..., 0] for p in polys], -1)
    boxes = aug.boxes_from_masks(torch.from_numpy(masks).permute(2, 0, 1)).numpy()
    hyp = segment_hyp({"degrees": degrees, "scale": 0.5, "translate": 0.2})
    has_seg = np.array([True, True])
    n_cropped = 0
    for _ in range(20):
        r = rng.uniform(0.8, 2.5)
        A = aug.scale_translate(r, rng.uniform(0, 64), rng.uniform(0, 64))
        place = aug.Placement(A, (A[0, 2], A[1, 2], A[0, 2] + r * w0, A[1, 2] + r * h0))
        M, rotated = aug.random_affine((192, 192), 96, hyp, rng)
        assert rotated == (degrees > 0)
        got, before = aug.instance_boxes(boxes, has_seg, masks, place, M, 96, rotated)
        full = torch.from_numpy(aug.sample_masks(masks, place, M, 96, 1))
        ref = aug.boxes_from_masks(full).numpy()
        np.testing.assert_allclose(got, ref, atol=2.0)  # nearest sampling of a rescaled mask: <= 2 px
        n_cropped += int((np.abs(got - before).max(1) > 1).sum())
        if degrees == 0:  # uncropped instances keep the exact corner box
            uncropped = (before >= 0).all(1) & (before <= 96).all(1)
            np.testing.assert_allclose(aug.transform_boxes(boxes, place, M, 96)[uncropped], ref[uncropped], atol=2.0)
    assert n_cropped >= 3  # the cropped case was exercised


@pytest.mark.parametrize("degrees", [0.0, 25.0])
def test_dataset_boxes_masks_and_image_aligned(tri_data, degrees):
    ds = build_dataset(tri_data, "train", imgsz=96, augment=True,
                       hyp={**NO_COLOUR, "mosaic": 1.0, "degrees": degrees, "scale": 0.4, "translate": 0.1})
    random.seed(1)
    n_inst, hits, diffs = 0, [], []
    for k in range(12):
        item = ds[k % len(ds)]
        S = 96
        boxes = item["boxes"].numpy() * S
        xyxy = np.stack([boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2,
                         boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2], 1)
        assert (boxes[:, 2] >= 2).all() and (boxes[:, 3] >= 2).all()  # degenerate ones were dropped
        mb = _mask_boxes(item["masks"], 4).numpy()
        has = item["masks"].flatten(1).any(1).bool().numpy()
        # masks live on a 4-px grid (sampled at cell centres): their box lies inside the instance box grown by a
        # cell, and on average within a couple of pixels of it (thin tips may miss every cell centre)
        assert (mb[has, :2] >= xyxy[has, :2] - 4.01).all() and (mb[has, 2:] <= xyxy[has, 2:] + 4.01).all()
        diffs += np.abs(mb[has] - xyxy[has]).ravel().tolist()
        # the image is red exactly where the masks are (cell centres, away from anti-aliased edges)
        img = item["img"].numpy()
        for m in item["masks"].numpy():
            ii, jj = np.nonzero(m)
            if len(ii) < 4:
                continue
            px = img[:, ii * 4 + 2, jj * 4 + 2].astype(int)
            red = (px[0] - px[1]) > 40  # the grey background has R == G
            assert red.mean() > 0.6
            hits += red.tolist()
        n_inst += len(boxes)
    assert n_inst > 20
    assert np.mean(hits) > 0.93, np.mean(hits)
    assert np.mean(diffs) < 2.5, np.mean(diffs)


def test_flip_mirrors_image_boxes_and_masks(tri_data):
    val = build_dataset(tri_data, "val", imgsz=64)
    flip = build_dataset(tri_data, "train", imgsz=64, augment=True,
                         hyp={**NO_COLOUR, "mosaic": 0.0, "scale": 0.0, "translate": 0.0, "fliplr": 1.0})
    a, b = val[2], flip[2]
    assert torch.equal(b["img"], a["img"].flip(-1))
    assert torch.equal(b["masks"], a["masks"].flip(-1))
    expect = a["boxes"].clone()
    expect[:, 0] = 1 - expect[:, 0]
    torch.testing.assert_close(b["boxes"], expect)


def test_hsv_changes_colour_only(tri_data):
    base = build_dataset(tri_data, "train", imgsz=64, augment=True,
                         hyp={**NO_COLOUR, "mosaic": 0.0, "scale": 0.0, "translate": 0.0, "fliplr": 0.0})
    hsv = build_dataset(tri_data, "train", imgsz=64, augment=True,
                        hyp={"mosaic": 0.0, "scale": 0.0, "translate": 0.0, "fliplr": 0.0, "hsv_v": 0.9})
    random.seed(0)
    a = base[1]
    random.seed(0)
    b = hsv[1]
    assert not torch.equal(a["img"], b["img"])
    assert torch.equal(a["masks"], b["masks"]) and torch.equal(a["boxes"], b["boxes"])


def _square_sample():
    """A 32x32 grey sample with a red 8x8 square at x 2..10, y 4..12 (an instance with a mask) and a box-only
    instance at x 18..30, y 0..16 whose left part the square's mirror image (x 22..30) will partly cover."""
    img = np.full((32, 32, 3), 90, np.uint8)
    img[4:12, 2:10] = RED
    full = np.zeros((32, 32), bool)
    full[4:12, 2:10] = True
    boxes = np.array([[2, 4, 10, 12], [10, 0, 24, 32]], np.float64)
    masks = np.zeros((2, 8, 8), np.uint8)
    masks[0, 1:3, 0:3] = 1  # cell centres (4c + 2) inside the square: x 2, 6 (and 10 on its edge), y 6, 10
    masks[1, :, 2:6] = 1
    return img, boxes, np.array([0, 1]), masks, np.array([True, False]), full


def test_copy_paste_mirrors_the_instance_with_its_mask_and_box():
    img, boxes, cls, masks, has_seg, full = _square_sample()
    out, b, c, m = aug.copy_paste(img, boxes, cls, masks, has_seg, lambda j: full, 1.0, random.Random(0))
    # mirrored box x 32-10..32-2 = 22..30 covers (24-22)*32 / (14*32) = 14% of the box-only instance: pasted
    np.testing.assert_array_equal(b, [[2, 4, 10, 12], [10, 0, 24, 32], [22, 4, 30, 12]])
    assert c.tolist() == [0, 1, 0]
    assert (out[4:12, 22:30] == RED).all() and (out[4:12, 2:10] == RED).all()
    assert (out[:4] == img[:4]).all() and (out[12:] == img[12:]).all() and (out[:, 10:22] == img[:, 10:22]).all()
    np.testing.assert_array_equal(m[2], masks[0][:, ::-1])
    np.testing.assert_array_equal(m[0], masks[0])
    # the box-only instance loses the cells the copy now covers (x centre 22 -> column 5, rows 1-2)
    expect = masks[1].copy()
    expect[1:3, 5] = 0
    np.testing.assert_array_equal(m[1], expect)


def test_copy_paste_skips_copies_that_would_hide_an_instance():
    img, boxes, cls, masks, has_seg, full = _square_sample()
    boxes[1] = [20, 0, 28, 16]  # the mirror (22..30) would cover 6/8 = 75% of it
    out, b, c, m = aug.copy_paste(img, boxes, cls, masks, has_seg, lambda j: full, 1.0, random.Random(0))
    assert np.array_equal(out, img) and len(b) == 2 and len(m) == 2
    # p * (instances with a mask) rounds to 0: nothing happens either
    assert aug.copy_paste(img, boxes, cls, masks, has_seg, lambda j: full, 0.4, random.Random(0))[0] is img


def test_mixup_blends_with_a_beta_32_32_weight():
    a = np.full((4, 4, 3), 200, np.uint8)
    b = np.full((4, 4, 3), 100, np.uint8)
    r = random.Random(3).betavariate(32.0, 32.0)
    got = aug.mixup(a, b, random.Random(3))
    assert 0.3 < r < 0.7 and (got == int(200 * r + 100 * (1 - r))).all()


def _check_aligned(item, S, red_check=True):
    boxes = item["boxes"].numpy() * S
    xyxy = np.stack([boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2,
                     boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2], 1)
    mb = _mask_boxes(item["masks"], 4).numpy()
    has = item["masks"].flatten(1).any(1).bool().numpy()
    assert (mb[has, :2] >= xyxy[has, :2] - 4.01).all() and (mb[has, 2:] <= xyxy[has, 2:] + 4.01).all()
    hits = []
    if red_check:
        img = item["img"].numpy()
        for m in item["masks"].numpy():
            ii, jj = np.nonzero(m)
            px = img[:, ii * 4 + 2, jj * 4 + 2].astype(int)
            hits += ((px[0] - px[1]) > 40).tolist()
    return len(boxes), hits


def test_copy_paste_in_the_dataset_keeps_masks_boxes_and_pixels_aligned(tri_data):
    plain = build_dataset(tri_data, "train", imgsz=96, augment=True,
                          hyp={**NO_COLOUR, "mosaic": 1.0, "scale": 0.3, "fliplr": 0.0})
    pasted = build_dataset(tri_data, "train", imgsz=96, augment=True,
                           hyp={**NO_COLOUR, "mosaic": 1.0, "scale": 0.3, "fliplr": 0.0, "copy_paste": 1.0})
    n_plain = n_pasted = 0
    hits = []
    for k in range(8):
        random.seed(k)
        n_plain += len(plain[k % 4]["cls"])
        random.seed(k)
        n, h = _check_aligned(pasted[k % 4], 96)
        n_pasted += n
        hits += h
    assert n_pasted > n_plain  # copies were added (same random draws up to the paste)
    assert np.mean(hits) > 0.9, np.mean(hits)


def test_mixup_in_the_dataset_adds_the_second_samples_instances(tri_data):
    hyp = {**NO_COLOUR, "mosaic": 1.0, "scale": 0.3, "fliplr": 0.0}
    plain = build_dataset(tri_data, "train", imgsz=96, augment=True, hyp=hyp)
    mixed = build_dataset(tri_data, "train", imgsz=96, augment=True, hyp={**hyp, "mixup": 1.0})
    random.seed(5)
    first = plain[1]
    random.seed(5)
    item = mixed[1]
    n = len(first["cls"])
    assert len(item["cls"]) > n  # both samples' instances
    torch.testing.assert_close(item["boxes"][:n], first["boxes"])
    assert torch.equal(item["masks"][:n], first["masks"])
    _check_aligned(item, 96, red_check=False)
    # the image is a blend: where the first sample was red and the second grey background, R is in between
    assert not torch.equal(item["img"], first["img"])


def test_flipud_mirrors_image_boxes_and_masks(tri_data):
    val = build_dataset(tri_data, "val", imgsz=64)
    flip = build_dataset(tri_data, "train", imgsz=64, augment=True,
                         hyp={**NO_COLOUR, "mosaic": 0.0, "scale": 0.0, "translate": 0.0, "fliplr": 0.0,
                              "flipud": 1.0})
    a, b = val[2], flip[2]
    assert torch.equal(b["img"], a["img"].flip(-2))
    assert torch.equal(b["masks"], a["masks"].flip(-2))
    expect = a["boxes"].clone()
    expect[:, 1] = 1 - expect[:, 1]
    torch.testing.assert_close(b["boxes"], expect)
