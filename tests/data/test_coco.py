"""COCO json reading: polygons, RLE (compressed and uncompressed), crowd, category mapping, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from gradpath.data import build_dataset, load_data_config
from gradpath.errors import DataError

def rle_counts_uncompressed(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE by hand: run lengths of the column-major flattening, starting with a 0-run."""
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, cur, run = [], 0, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    return counts


CATS = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]


def _masks():
    m2 = np.zeros((16, 16), np.uint8)
    m2[8:12, 1:5] = 1
    m3 = np.zeros((16, 16), np.uint8)
    m3[12:15, 10:16] = 1
    m3[14, 10] = 0  # not a rectangle
    m4 = np.zeros((16, 16), np.uint8)
    m4[0:4, 12:16] = 1
    return m2, m3, m4


def _anns():
    m2, m3, m4 = _masks()
    compressed = mask_utils.encode(np.asfortranarray(m3))["counts"].decode("ascii")
    return [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [2, 2, 8, 4], "area": 32,
         "segmentation": [[2, 2, 10, 2, 10, 6, 2, 6]]},
        {"id": 2, "image_id": 1, "category_id": 3, "bbox": [1, 8, 4, 4],
         "segmentation": {"size": [16, 16], "counts": rle_counts_uncompressed(m2)}},
        {"id": 3, "image_id": 1, "category_id": 3, "bbox": [10, 12, 6, 3],
         "segmentation": {"size": [16, 16], "counts": compressed}},
        {"id": 4, "image_id": 1, "category_id": 7, "bbox": [12, 0, 4, 4], "iscrowd": 1,
         "segmentation": {"size": [16, 16], "counts": rle_counts_uncompressed(m4)}},
    ]


def test_names_and_category_mapping_from_categories(coco_factory):
    cfg = load_data_config(coco_factory([("a.png", 16, 16)], _anns(), CATS))
    assert cfg.names == ["cat", "dog"]  # ascending category id: 3 -> 0, 7 -> 1
    assert cfg.category_ids == [3, 7]
    ds = build_dataset(cfg, "val", imgsz=64)
    assert ds.class_to_category == [3, 7] and ds.names == ["cat", "dog"]


def test_yaml_names_override_and_length_check(coco_factory):
    cfg = load_data_config(coco_factory([("a.png", 16, 16)], _anns(), CATS, names=["c", "d"]))
    assert cfg.names == ["c", "d"]
    with pytest.raises(DataError, match="3 entries but instances_train.json has 2 categories"):
        load_data_config(coco_factory([("a.png", 16, 16)], _anns(), CATS, names=["a", "b", "c"]))


def test_rle_polygon_and_crowd_parsing(coco_factory):
    ds = build_dataset(coco_factory([("a.png", 16, 16)], _anns(), CATS), "val", imgsz=64)
    item = ds[0]
    # crowd annotation 4 is not a training target; order follows the json
    assert item["cls"].tolist() == [1.0, 0.0, 0.0]
    # 16 px -> 64 px (gain 4, no padding); ann 2 box [1, 8, 4, 4] -> xyxy [4, 32, 20, 48]
    assert item["ratio_pad"] == ((4.0, 4.0), (0.0, 0.0)) and item["orig_shape"] == (16, 16)
    np.testing.assert_allclose(item["boxes"][1].numpy(), [12 / 64, 40 / 64, 16 / 64, 16 / 64], atol=1e-6)
    # masks at imgsz/4 = 16 px are exactly the original-resolution masks
    m2, m3, _ = _masks()
    assert item["masks"].shape == (3, 16, 16) and item["masks"].dtype.is_floating_point is False
    np.testing.assert_array_equal(item["masks"][1].numpy(), m2)  # uncompressed RLE
    np.testing.assert_array_equal(item["masks"][2].numpy(), m3)  # compressed RLE
    poly = mask_utils.decode(mask_utils.frPyObjects([[2, 2, 10, 2, 10, 6, 2, 6]], 16, 16))[..., 0]
    np.testing.assert_array_equal(item["masks"][0].numpy(), poly)


def test_coco_gt_keeps_crowd_and_fills_area(coco_factory):
    ds = build_dataset(coco_factory([("a.png", 16, 16)], _anns(), CATS), "val", imgsz=64)
    gt = ds.coco_gt()
    anns = gt.loadAnns(gt.getAnnIds())
    assert [a["iscrowd"] for a in anns] == [0, 0, 0, 1]
    assert anns[1]["area"] == 16.0  # filled from the RLE: 4x4 pixels
    assert anns[2]["area"] == 17.0  # 3x6 - 1
    assert sorted(gt.getCatIds()) == [3, 7]
    assert gt.imgs[1]["height"] == 16


def _expect(coco_factory, match, images=(("a.png", 16, 16),), anns=None, **kw):
    with pytest.raises(DataError, match=match) as e:
        ds = build_dataset(coco_factory(list(images), _anns() if anns is None else anns, CATS, **kw), "train",
                           imgsz=64)
        ds[0]
    assert "\n" not in str(e.value)  # one line


def test_annotation_missing_bbox(coco_factory):
    anns = _anns()
    anns[0].pop("bbox")
    anns[0]["id"] = 17
    _expect(coco_factory, r"annotations/instances_train.json: annotation 17 has no 'bbox'", anns=anns)


def test_json_missing_keys(coco_factory):
    _expect(coco_factory, r"instances_train.json: image 1 has no 'file_name'",
            mutate=lambda d: d["images"][0].pop("file_name"))
    _expect(coco_factory, r"instances_train.json: missing top-level key 'annotations'",
            mutate=lambda d: d.pop("annotations"))
    with pytest.raises(DataError, match=r"instances_train.json: category 0 has no 'id'"):
        load_data_config(coco_factory([("a.png", 16, 16)], _anns(), [{"name": "x"}]))


def test_polygon_with_fewer_than_3_points_is_dropped_and_the_box_kept(coco_factory):
    """Regression: one 2-point polygon used to abort the whole dataset. Now it is dropped
    with one warning for all of them; an instance with no polygon left keeps its box (its mask is the box, for
    training and in the evaluation ground truth), one with another valid polygon keeps that polygon."""
    anns = _anns()
    box0, poly1 = list(anns[0]["bbox"]), [1, 8, 5, 8, 5, 12, 1, 12]
    anns[0]["segmentation"] = [[2, 2, 10, 2]]
    anns[1]["segmentation"] = [[1, 1, 3, 3], poly1, [5, 5]]
    with pytest.warns(UserWarning) as rec:
        ds = build_dataset(coco_factory([("a.png", 16, 16)], anns, CATS), "train", imgsz=64)
    msgs = [str(w.message) for w in rec]
    assert len(msgs) == 1 and "3 polygon(s) with fewer than 3 points dropped, boxes kept" in msgs[0], msgs
    r = ds.records[0]
    assert r.segments[0] is None and r.segments[1] == [[float(v) for v in poly1]]
    np.testing.assert_allclose(r.boxes[0], [box0[0], box0[1], box0[0] + box0[2], box0[1] + box0[3]])
    gt = ds.coco_gt().loadAnns(ds.coco_gt().getAnnIds())
    x, y, w, h = box0
    assert gt[0]["segmentation"] == [[x, y, x + w, y, x + w, y + h, x, y + h]]
    assert gt[1]["segmentation"] == [poly1]
    item = ds[0]
    assert len(item["cls"]) == 3  # annotations 1-3 (4 is a crowd region)
    # annotation 1's mask is its box (2..10 x 2..6 px, x4 to the 64 canvas, /4 to the 16 mask grid: 8 x 4 cells)
    assert item["masks"][0].sum() == 32 and item["masks"][0, 2:6, 2:10].all()


def test_annotation_for_missing_image_and_category(coco_factory):
    anns = _anns()
    anns[1]["image_id"] = 99
    _expect(coco_factory, r"annotation 2: image_id 99 is not in 'images'", anns=anns)
    anns = _anns()
    anns[1]["category_id"] = 5
    _expect(coco_factory, r"annotation 2: category_id 5 is not in 'categories'", anns=anns)


def test_rle_size_mismatch(coco_factory):
    anns = _anns()
    anns[1]["segmentation"]["size"] = [8, 8]
    _expect(coco_factory, r"annotation 2: RLE size \[8, 8\] differs from the image's \[16, 16\]", anns=anns)


def test_missing_image_file(coco_factory):
    _expect(coco_factory, r"images/train/a.png: image file not found", write_images=False)


def test_corrupt_image(coco_factory):
    yaml_path = coco_factory([("a.png", 16, 16)], _anns(), CATS)
    (yaml_path.parent / "images" / "train" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    ds = build_dataset(yaml_path, "val", imgsz=64)
    with pytest.raises(DataError, match=r"a.png: corrupt or unreadable image"):
        ds[0]


def test_image_size_differs_from_json(coco_factory, png):
    yaml_path = coco_factory([("a.png", 16, 16)], _anns(), CATS)
    png(yaml_path.parent / "images" / "train" / "a.png", 16, 20)
    with pytest.raises(DataError, match=r"a.png: image is 20x16 but its annotations say 16x16"):
        build_dataset(yaml_path, "val", imgsz=64)[0]


def test_empty_dataset(coco_factory):
    _expect(coco_factory, r"instances_train.json: empty dataset", images=(), anns=[])


def test_invalid_json(coco_factory):
    yaml_path = coco_factory([("a.png", 16, 16)], _anns(), CATS)
    (yaml_path.parent / "annotations" / "instances_train.json").write_text('{"images": [')
    with pytest.raises(DataError, match=r"instances_train.json: not valid JSON"):
        load_data_config(yaml_path)


def test_degenerate_box_is_dropped_with_warning(coco_factory):
    anns = _anns()
    anns[1]["bbox"] = [1, 8, 0, 4]
    with pytest.warns(UserWarning, match=r"1 data warning.*annotation 2: degenerate box"):
        ds = build_dataset(coco_factory([("a.png", 16, 16)], anns, CATS), "val", imgsz=64)
    assert ds[0]["cls"].tolist() == [1.0, 0.0]
    assert len(ds.coco_gt().getAnnIds()) == 4  # ground truth is what the user wrote


def test_yaml_errors(tmp_path):
    with pytest.raises(DataError, match="not found.*Did you mean: shapes"):
        load_data_config(tmp_path / "shape")
    bad = tmp_path / "d.yaml"
    bad.write_text("train: images\nnames: [a]\n")
    with pytest.raises(DataError, match=r"d.yaml: missing 'val' split"):
        load_data_config(bad)
    bad.write_text("train: [\n")
    with pytest.raises(DataError, match=r"d.yaml: invalid YAML"):
        load_data_config(bad)
    bad.write_text(json.dumps({"train": {"images": "i", "anotations": "a.json"}, "val": "v", "names": ["a"]}))
    with pytest.raises(DataError, match=r"unknown key 'anotations'.*Did you mean: annotations"):
        load_data_config(bad)
