"""``gradpath check-data``: every problem listed with its file; exit 1 on errors, 0 on warnings alone."""
from __future__ import annotations

import json

from gradpath.cli import main

GOOD = "0 0.5 0.5 0.2 0.2\n"


def _run(capsys, *argv):
    rc = main(["check-data", *map(str, argv)])
    return rc, capsys.readouterr().out


def test_lists_every_problem_with_file_names(yolo_factory, capsys):
    y = yolo_factory({
        "a.png": (20, 40, GOOD),
        "b.png": (20, 40, GOOD),
        "c.png": (20, 40, "5 0.5 0.5 0.2 0.2\n"),
        "d.png": (20, 40, "0 0.1 0.2\n"),
        "e.png": (20, 40, "0 0.5 0.5 0 0.2\n"),
        "f.png": (20, 40, ""),
    }, ["x", "y"])
    (y.parent / "images" / "train" / "b.png").write_bytes(b"GIF89a broken")
    (y.parent / "labels" / "train" / "ghost.txt").write_text(GOOD)
    rc, out = _run(capsys, y, "--json", "--split", "train")
    assert rc == 2  # check-data failures are user-input errors: exit 2, like every other one
    rep = json.loads(out)
    errors = {(e["file"], e["message"].split(" (")[0]) for e in rep["errors"]}
    assert errors == {
        ("images/train/b.png", "corrupt or unreadable image"),
        ("labels/train/c.txt", "line 1: class id 5 out of range 0..1"),
        ("labels/train/ghost.txt", "label file has no matching image"),
    }
    warnings = {(w["file"], w["message"].split(" (")[0]) for w in rep["warnings"]}
    assert ("labels/train/d.txt", "1 polygon(s) with fewer than 3 points dropped") in warnings
    assert rep["splits"]["train"]["dropped_polygons"] == 1
    assert ("labels/train/e.txt", "line 1: degenerate box") in warnings
    assert ("labels/train/f.txt", "empty label file") in warnings
    assert rep["splits"]["train"]["images"] == 6 and not rep["ok"]


def test_warnings_alone_exit_0(yolo_factory, capsys):
    y = yolo_factory({"a.png": (20, 40, GOOD), "f.png": (20, 40, "")}, ["x", "y"])
    rc, out = _run(capsys, y)
    assert rc == 0
    assert "warning: [train] labels/train/f.txt: empty label file" in out
    assert "train: 2 images, 1 instances (yolo)" in out
    assert out.strip().endswith("0 error(s), 2 warning(s): OK")  # train and val share the folder


def test_coco_problems(coco_factory, capsys):
    anns = [{"id": 17, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5]]},
            {"id": 18, "image_id": 2, "category_id": 1, "bbox": [1, 1, 4, 4]},
            {"id": 19, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "segmentation": [[1, 1, 5, 1]]}]
    y = coco_factory([("a.png", 16, 16), ("b.png", 16, 16)], anns, [{"id": 1, "name": "x"}])
    (y.parent / "images" / "train" / "b.png").unlink()
    rc, out = _run(capsys, y, "--split", "train")
    assert rc == 2  # check-data failures are user-input errors: exit 2, like every other one
    assert "error: [train] annotations/instances_train.json: annotation 17 has no 'bbox'" in out
    assert ("warning: [train] annotations/instances_train.json: 1 polygon(s) with fewer than 3 points dropped "
            "(annotation 19); their instances keep their boxes") in out
    assert "error: [train] images/train/b.png: image file not found (image 2 in instances_train.json)" in out
    assert "2 error(s)" in out


def test_empty_dataset_and_bad_yaml(coco_factory, tmp_path, capsys):
    y = coco_factory([], [], [{"id": 1, "name": "x"}])
    rc, out = _run(capsys, y, "--split", "val")
    assert rc == 2 and "annotations/instances_train.json: empty dataset: no images" in out
    rc, out = _run(capsys, tmp_path / "missing.yaml")
    assert rc == 2 and "missing.yaml" in out and "not found" in out
