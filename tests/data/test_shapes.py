"""The embedded shapes set: deterministic, cached once (atomically), occlusion-aware masks, both annotation paths."""
from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from gradpath.data import build_dataset, generate_shapes, load_data_config
from gradpath.data import shapes as shapes_mod
from gradpath.errors import DataError

SMALL = dict(n_train=6, n_val=3, size=96, seed=3, objects=(3, 5), object_size=(20, 50))


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = _files(generate_shapes(tmp_path / "a", **SMALL))
    b = _files(generate_shapes(tmp_path / "b", **SMALL))
    assert a == b and len(a) == 6 + 3 + 2 + 2  # images, 2 jsons, data.yaml, shapes.json
    c = _files(generate_shapes(tmp_path / "c", **{**SMALL, "seed": 4}))
    assert c[next(iter(k for k in c if k.suffix == ".png"))] != a[next(iter(k for k in a if k.suffix == ".png"))]


def test_annotations_are_visible_parts_and_use_both_formats(tmp_path):
    root = generate_shapes(tmp_path / "s", **{**SMALL, "n_train": 20, "classes": ["circle", "square", "triangle"]})
    data = json.loads((root / "annotations" / "instances_train.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["circle", "square", "triangle"]
    kinds = {"poly": 0, "rle": 0}
    by_image: dict[int, list[np.ndarray]] = {}
    for a in data["annotations"]:
        seg = a["segmentation"]
        if isinstance(seg, list):
            kinds["poly"] += 1
            assert a["category_id"] != 1  # circles are always RLE
            m = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, 96, 96)))
        else:
            kinds["rle"] += 1
            m = mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()})
        assert m.sum() == a["area"] > 0
        ys, xs = np.nonzero(m)
        assert a["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        by_image.setdefault(a["image_id"], []).append(m)
    assert kinds["poly"] > 5 and kinds["rle"] > 5
    # a later shape covers earlier ones: the labelled (visible) masks never overlap
    for ms in by_image.values():
        assert (np.sum(ms, 0) <= 1).all()
    assert all(2 <= len(ms) <= 5 for ms in by_image.values())


def test_shape_pixels_match_masks(tmp_path):
    root = generate_shapes(tmp_path / "s", **SMALL)
    ds = build_dataset(root / "data.yaml", "val", imgsz=96)
    item = ds[0]
    img = item["img"].numpy().astype(int)
    for m in item["masks"].numpy():
        ii, jj = np.nonzero(m)
        px = img[:, ii * 4 + 2, jj * 4 + 2]
        # a shape is one colour with a soft vertical shading: little spread across its mask
        assert px.std(1).max() < 40


def test_cache_reused_and_settings_checked(tmp_path, monkeypatch):
    root = generate_shapes(tmp_path / "s", **SMALL)
    stamp = (root / "images" / "train" / "000000.png").stat().st_mtime_ns
    calls = []
    monkeypatch.setattr(shapes_mod, "_write_split", lambda *a, **k: calls.append(a))
    assert generate_shapes(tmp_path / "s", **SMALL) == root and calls == []
    assert (root / "images" / "train" / "000000.png").stat().st_mtime_ns == stamp
    with pytest.raises(DataError, match="generated with other settings"):
        generate_shapes(tmp_path / "s", **{**SMALL, "seed": 9})


def test_default_cache_location_and_load_data_config(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADPATH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(shapes_mod, "DEFAULTS", {**shapes_mod.DEFAULTS, **SMALL})
    cfg = load_data_config("shapes")
    assert cfg.names == ["circle", "square", "triangle"] and cfg.nc == 3
    assert cfg.root.parent == (tmp_path / "cache").resolve() and cfg.root.name.startswith("shapes-")
    calls = []
    monkeypatch.setattr(shapes_mod, "_write_split", lambda *a, **k: calls.append(a))
    assert load_data_config("shapes").root == cfg.root and calls == []  # generated once, then reused
    assert len(build_dataset(cfg, "train", imgsz=96)) == 6


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    real = shapes_mod._write_split

    def fail_on_val(root, split, *a, **k):
        if split == "val":
            raise KeyboardInterrupt
        return real(root, split, *a, **k)

    monkeypatch.setattr(shapes_mod, "_write_split", fail_on_val)
    with pytest.raises(KeyboardInterrupt):
        generate_shapes(tmp_path / "s", **SMALL)
    assert list(tmp_path.iterdir()) == []  # neither a half cache nor a temp folder


def test_bad_settings():
    with pytest.raises(DataError, match="classes must be"):
        generate_shapes("/nonexistent/x", classes=["circle", "blob"])
    with pytest.raises(DataError, match="classes must be 1..6"):
        generate_shapes("/nonexistent/x", classes=9)
