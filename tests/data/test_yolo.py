"""YOLO txt labels: boxes and polygons, label lookup, in-memory COCO ground truth, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from gradpath.data import build_dataset, collate_fn, load_data_config
from gradpath.errors import DataError

LABEL = "0 0.5 0.5 0.25 0.5\n1 0.1 0.1 0.4 0.1 0.4 0.6 0.1 0.6\n"


def test_boxes_and_polygons_letterboxed(yolo_factory):
    # a.png is 40 wide, 20 high: gain 64/40 = 1.6, resized to 64x32, padded 16 px top and bottom
    ds = build_dataset(yolo_factory({"a.png": (20, 40, LABEL), "b.png": (20, 40, None)}, ["x", "y"]), "val",
                       imgsz=64)
    a = ds[0]
    assert a["orig_shape"] == (20, 40) and a["ratio_pad"] == ((1.6, 1.6), (0.0, 16.0))
    assert a["cls"].tolist() == [0.0, 1.0]
    # box: cx 20, cy 10, w 10, h 10 px -> xyxy (15, 5, 25, 15) -> (24, 24, 40, 40) letterboxed
    np.testing.assert_allclose(a["boxes"][0].numpy(), [0.5, 0.5, 0.25, 0.25], atol=1e-6)
    # polygon x 4..16, y 2..12 px -> x 6.4..25.6, y 19.2..35.2
    np.testing.assert_allclose(a["boxes"][1].numpy(), [16 / 64, 27.2 / 64, 19.2 / 64, 16 / 64], atol=1e-6)
    # the box-only instance's mask is its box: cells (4j+2) inside [24, 40) -> j = 6..9
    m = a["masks"][0].numpy()
    assert m.shape == (16, 16)
    assert set(zip(*np.nonzero(m))) == {(i, j) for i in range(6, 10) for j in range(6, 10)}
    assert a["img"][:, 0, 0].tolist() == [114, 114, 114]  # letterbox padding
    b = ds[1]
    assert len(b["cls"]) == 0 and b["masks"].shape == (0, 16, 16)  # no label file: background image
    batch = collate_fn([a, b])
    assert batch["img"].shape == (2, 3, 64, 64) and batch["masks"].shape == (2, 16, 16)
    np.testing.assert_allclose(batch["targets"][:, :2].numpy(), [[0, 0], [0, 1]])


def test_explicit_labels_folder(yolo_factory):
    ds = build_dataset(yolo_factory({"a.png": (20, 40, LABEL)}, ["x", "y"], labels_dir="ann"), "val", imgsz=64)
    assert ds[0]["cls"].tolist() == [0.0, 1.0]


def test_names_as_mapping(tmp_path, yolo_factory):
    y = yolo_factory({"a.png": (20, 40, LABEL)}, ["x", "y"])
    y.write_text(y.read_text().replace('names: ["x", "y"]', "names: {1: y, 0: x}"))
    assert load_data_config(y).names == ["x", "y"]
    y.write_text(y.read_text().replace("names: {1: y, 0: x}", "names: {0: x, 2: y}"))
    with pytest.raises(DataError, match=r"data.yaml: 'names' ids must be 0..1 without gaps"):
        load_data_config(y)


def test_coco_gt_built_in_memory(yolo_factory):
    ds = build_dataset(yolo_factory({"a.png": (20, 40, LABEL)}, ["x", "y"]), "val", imgsz=64)
    gt = ds.coco_gt()
    assert ds.class_to_category == [1, 2]
    img = gt.imgs[1]
    assert (img["height"], img["width"]) == (20, 40)
    anns = gt.loadAnns(gt.getAnnIds())
    np.testing.assert_allclose(anns[0]["bbox"], [15, 5, 10, 10], atol=1e-4)
    np.testing.assert_allclose(anns[1]["bbox"], [4, 2, 12, 10], atol=1e-4)
    assert [a["category_id"] for a in anns] == [1, 2] and all(a["iscrowd"] == 0 for a in anns)


@pytest.mark.parametrize("text, match", [
    ("2 0.5 0.5 0.2 0.2\n", r"labels/train/a.txt: line 1: class id 2 out of range 0..1"),
    ("0 0.5 0.5 0.2 0.2\n1 abc 0.5 0.1 0.1\n", r"labels/train/a.txt: line 2: not all numbers"),
    ("0 0.1 0.2 0.3\n", r"labels/train/a.txt: line 1: expected 'class cx cy w h'"),
    ("0 50 50 10 10\n", r"labels/train/a.txt: line 1: coordinates outside \[0, 1\]"),
])
def test_bad_labels(yolo_factory, text, match):
    with pytest.raises(DataError, match=match) as e:
        build_dataset(yolo_factory({"a.png": (20, 40, text)}, ["x", "y"]), "train", imgsz=64)
    assert "\n" not in str(e.value)


def test_label_without_image(yolo_factory):
    y = yolo_factory({"a.png": (20, 40, LABEL)}, ["x", "y"])
    (y.parent / "labels" / "train" / "ghost.txt").write_text(LABEL)
    with pytest.raises(DataError, match=r"labels/train/ghost.txt: label file has no matching image"):
        build_dataset(y, "train", imgsz=64)


def test_empty_image_folder(yolo_factory):
    y = yolo_factory({"a.png": (20, 40, LABEL)}, ["x", "y"])
    (y.parent / "images" / "train" / "a.png").unlink()
    (y.parent / "labels" / "train" / "a.txt").unlink()
    with pytest.raises(DataError, match=r"images/train: empty dataset"):
        build_dataset(y, "train", imgsz=64)


def test_imgsz_must_be_multiple_of_32(yolo_factory):
    from gradpath.errors import GradpathError

    with pytest.raises(GradpathError, match="multiple of 32"):
        build_dataset(yolo_factory({"a.png": (20, 40, LABEL)}, ["x", "y"]), "val", imgsz=100)


def test_one_point_polygon_is_dropped_with_one_warning(yolo_factory):
    """Regression: a 1-point row used to abort the dataset; it is dropped (a point has no
    box either), the other rows are kept, and one warning counts the drops of every file."""
    y = yolo_factory({"a.png": (20, 40, "0 0.1 0.2\n1 0.5 0.5 0.2 0.2\n0 0.3 0.3\n"),
                      "b.png": (20, 40, "1 0.7 0.7\n")}, ["x", "y"])
    with pytest.warns(UserWarning) as rec:
        ds = build_dataset(y, "train", imgsz=64)
    msgs = [str(w.message) for w in rec]
    assert len(msgs) == 1 and "(3 polygon(s) with fewer than 3 points dropped, boxes kept)" in msgs[0], msgs
    assert "labels/train/a.txt: 2 polygon(s) with fewer than 3 points dropped (line 1, 3)" in msgs[0]
    a = next(r for r in ds.records if r.file.name == "a.png")
    assert a.cls.tolist() == [1]
    np.testing.assert_allclose(a.boxes, [[0.4, 0.4, 0.6, 0.6]], atol=1e-6)
