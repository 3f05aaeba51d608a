"""Classification data: ImageNet-layout folders and yaml, one-line errors, the transforms, ``shapes-cls``."""
from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from gradpath.data import shapes_cls
from gradpath.data.classify import (
    ClassifyDataset,
    classify_collate,
    eval_transform,
    load_classify_data,
    random_resized_crop_box,
    resolve_classify_hyp,
)
from gradpath.errors import DataError, GradpathError


def _layout(root, png, train=None, val=None, size=(20, 24)):
    """``train``/``val``: {class: number of images}; returns root."""
    for split, classes in (("train", train or {"dog": 2, "cat": 3}), ("val", val or {"dog": 1, "cat": 1})):
        for cls, n in classes.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for k in range(n):
                png(root / split / cls / f"{k}.png", *size)
    return root


def test_folder_layout_sorted_classes_and_samples(tmp_path, png):
    root = _layout(tmp_path / "ds", png)
    data = load_classify_data(root)
    assert data.names == ("cat", "dog") and data.nc == 2
    assert [(p.parent.name, p.name, c) for p, c in data.samples["train"]] == [
        ("cat", "0.png", 0), ("cat", "1.png", 0), ("cat", "2.png", 0), ("dog", "0.png", 1), ("dog", "1.png", 1)]
    assert [c for _, c in data.samples["val"]] == [0, 1]


def test_yaml_with_path_and_names_order(tmp_path, png):
    _layout(tmp_path / "ds", png)
    cfg = tmp_path / "cls.yaml"
    cfg.write_text("path: ds\ntrain: train\nval: val\nnames: [dog, cat]\n")
    data = load_classify_data(cfg)
    assert data.names == ("dog", "cat") and data.root == (tmp_path / "ds").resolve()
    assert [(p.parent.name, c) for p, c in data.samples["val"]] == [("dog", 0), ("cat", 1)]
    cfg.write_text("path: ds\ntrain: train\nval: val\nnames: [dog, cow]\n")
    with pytest.raises(DataError, match=r"cls.yaml: 'names' must list the class folders .* differs at 'cat'"):
        load_classify_data(cfg)
    cfg.write_text("path: ds\ntrain: train\n")
    with pytest.raises(DataError, match="cls.yaml: 'val' must name the val folder"):
        load_classify_data(cfg)


def test_class_mismatch_names_the_folder_and_class(tmp_path, png):
    root = _layout(tmp_path / "ds", png, val={"dog": 1})
    with pytest.raises(DataError, match=r"val: lacks class folder 'cat'; train and val must have the same"):
        load_classify_data(root)
    root2 = _layout(tmp_path / "ds2", png, val={"dog": 1, "cat": 1, "emu": 1})
    with pytest.raises(DataError, match=r"val: has class folder 'emu' not in train"):
        load_classify_data(root2)


def test_empty_class_missing_split_and_non_image_files(tmp_path, png):
    root = _layout(tmp_path / "ds", png)
    (root / "train" / "cat" / "notes.txt").write_text("x")
    (root / "val" / "dog" / "labels.csv").write_text("x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_classify_data(root)
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "skipped 2 non-image file(s)" in msgs[0]
    assert len(data.samples["train"]) == 5
    (root / "train" / "emu").mkdir()
    (root / "val" / "emu").mkdir()
    with pytest.raises(DataError, match=r"train/emu: class folder holds no images"):
        load_classify_data(root)
    only_train = _layout(tmp_path / "t", png)
    for p in (only_train / "val").rglob("*.png"):
        p.unlink()
    for d in sorted((only_train / "val").iterdir()):
        d.rmdir()
    (only_train / "val").rmdir()
    with pytest.raises(DataError, match="missing 'val' split folder"):
        load_classify_data(only_train)
    with pytest.raises(DataError, match="not found.*Did you mean: shapes-cls"):
        load_classify_data("shapes_cls")


def test_bad_image_is_a_one_line_error_naming_the_file(tmp_path, png):
    root = _layout(tmp_path / "ds", png)
    (root / "val" / "cat" / "0.png").write_bytes(b"not a png")
    ds = ClassifyDataset(root, "val", imgsz=16, augment=False)
    with pytest.raises(DataError, match=r"val/cat/0.png: corrupt or unreadable image"):
        ds[0]


def test_train_items_and_collate_shapes_dtypes(tmp_path, png):
    root = _layout(tmp_path / "ds", png, size=(30, 40))
    ds = ClassifyDataset(root, "train", imgsz=16, augment=True, cache=True)
    random.seed(0)
    img, label = ds[4]
    assert img.dtype == torch.uint8 and img.shape == (3, 16, 16) and label == 1
    imgs, labels = classify_collate([ds[i] for i in range(len(ds))])
    assert imgs.dtype == torch.uint8 and imgs.shape == (5, 3, 16, 16)
    assert labels.dtype == torch.int64 and labels.tolist() == [0, 0, 0, 1, 1]


def test_cache_decodes_once_up_front_and_reaches_the_loader_workers(tmp_path, png):
    root = _layout(tmp_path / "ds", png, size=(30, 40))
    plain = ClassifyDataset(root, "train", imgsz=16, augment=True)
    cached = ClassifyDataset(root, "train", imgsz=16, augment=True, cache=True)
    assert set(cached._cache) == set(range(len(cached)))
    for i in range(len(plain)):  # the cached path gives the plain path's items, augmentation included
        random.seed(i)
        a = plain[i]
        random.seed(i)
        b = cached[i]
        assert torch.equal(a[0], b[0]) and a[1] == b[1]
    expected = [plain.load(i).copy() for i in range(len(plain))]
    for p in (root / "train").rglob("*.png"):  # a worker that decoded on its own would now fail
        p.unlink()
    cached.augment = False
    loader = torch.utils.data.DataLoader(cached, batch_size=2, num_workers=1, collate_fn=classify_collate)
    assert sum(len(labels) for _, labels in loader) == len(expected)
    assert all(np.array_equal(cached.load(i), expected[i]) for i in range(len(expected)))


def test_full_crop_with_certain_flip_is_the_mirror_image(tmp_path):
    root = tmp_path / "ds"
    arr = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    for split in ("train", "val"):
        (root / split / "a").mkdir(parents=True)
        Image.fromarray(arr).save(root / split / "a" / "0.png")
    hyp = {"crop_scale_min": 1.0, "crop_ratio_min": 1.0, "crop_ratio_max": 1.0, "fliplr": 1.0}
    img, _ = ClassifyDataset(root, "train", imgsz=8, augment=True, hyp=hyp)[0]
    np.testing.assert_array_equal(img.permute(1, 2, 0).numpy(), arr[:, ::-1])


def test_random_resized_crop_box_respects_scale_ratio_and_bounds():
    rng = random.Random(0)
    for _ in range(200):
        left, top, w, h = random_resized_crop_box(60, 80, (0.35, 1.0), (3 / 4, 4 / 3), rng)
        assert 0 <= left and left + w <= 80 and 0 <= top and top + h <= 60
        assert 0.33 <= w * h / (60 * 80) <= 1.0
        assert 0.7 <= w / h <= 1.4
    # no crop of ratio >= 4 fits a square at full area: fallback is the centred crop with the clamped ratio
    assert random_resized_crop_box(40, 40, (1.0, 1.0), (4.0, 5.0), random.Random(0)) == (0, 15, 40, 10)


def test_eval_transform_exact_on_a_hand_made_image():
    img = np.arange(8 * 16 * 3, dtype=np.int64).reshape(8, 16, 3).astype(np.uint8)
    # short side 8 = floor(4 / 0.5): no resize; centre crop at top (8-4)/2 = 2, left (16-4)/2 = 6
    np.testing.assert_array_equal(eval_transform(img, 4, crop_fraction=0.5), img[2:6, 6:10])
    # a resize that keeps columns constant: 10x20 -> short 9 = floor(8 / 0.875), 9x18; crop 8 at (0, 5)
    cols = np.tile(np.repeat(np.arange(0, 200, 20, dtype=np.uint8), 2)[None, :, None], (10, 1, 3))
    out = eval_transform(cols, 8)
    assert out.shape == (8, 8, 3)
    ref = np.asarray(Image.fromarray(cols).resize((18, 9), Image.BILINEAR))[0:8, 5:13]
    np.testing.assert_array_equal(out, ref)
    assert (out == out[:1]).all()  # constant down each column, as the source


def test_bad_hyp_values():
    with pytest.raises(GradpathError, match="hyp fliplr must be a probability"):
        resolve_classify_hyp({"fliplr": 2})
    with pytest.raises(GradpathError, match="hyp 'crop_fraction' must be a number"):
        resolve_classify_hyp({"crop_fraction": "big"})
    assert resolve_classify_hyp({"lr0": 0.1})["crop_scale_min"] == 0.35  # foreign training keys are ignored


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_shapes_cls_is_deterministic_and_loads(tmp_path):
    small = dict(n_train=1, n_val=1, imgsz=32, seed=3)
    a = _files(shapes_cls.make_shapes_cls(tmp_path / "a", **small))
    b = _files(shapes_cls.make_shapes_cls(tmp_path / "b", **small))
    assert a == b and len(a) == 30 * 2 + 2  # images, data.yaml, shapes_cls.json
    c = _files(shapes_cls.make_shapes_cls(tmp_path / "c", **{**small, "seed": 4}))
    first = sorted(k for k in a if k.suffix == ".png")[0]
    assert c[first] != a[first]
    data = load_classify_data(tmp_path / "a" / "data.yaml")
    assert list(data.names) == shapes_cls.class_names() and data.nc == 30
    assert data.names[0] == "cool-outline-circle" and data.names[-1] == "warm-striped-triangle"
    img, label = ClassifyDataset(data, "val", imgsz=32, augment=False)[29]
    assert img.shape == (3, 32, 32) and label == 29
    # a second call with the same settings reuses the set; other settings are refused
    assert shapes_cls.make_shapes_cls(tmp_path / "a", **small) == tmp_path / "a"
    with pytest.raises(DataError, match="generated with other settings"):
        shapes_cls.make_shapes_cls(tmp_path / "a", **{**small, "n_train": 2})
    with pytest.raises(DataError, match="unknown difficulty key 'noize'"):
        shapes_cls.make_shapes_cls(tmp_path / "d", **small, difficulty={"noize": 1})
