"""A corpus of bad dataset inputs, each a small file made here, and what gradpath does with it.

Every case is either an error — one line, naming the file, raised as ``GradpathError`` by the loaders and
reported by ``gradpath check-data`` with exit status 2 — or a documented recovery, checked on the loaded
dataset. ``CASES`` is a table (id, group, input, outcome) meant to be rendered into the README.
"""
from __future__ import annotations

import json
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from gradpath.cli import main
from gradpath.data import build_dataset, check_dataset
from gradpath.data.images import read_image
from gradpath.errors import GradpathError

GOOD = "0 0.5 0.5 0.5 0.5\n"  # class 0, a box over the middle half


# -- makers -----------------------------------------------------------------------------------------------------
def rgb_png(path: Path, h: int = 20, w: int = 40, colour=(60, 120, 180)) -> None:
    Image.fromarray(np.full((h, w, 3), colour, np.uint8)).save(path)


def yolo_set(tmp: Path, images: dict[str, Callable[[Path], None]] | None = None,
             labels: dict[str, str] | None = None, yaml_text: str | None = None) -> Path:
    """``images/train/<name>`` written by its maker, ``labels/train/<stem>.txt``; train and val share them."""
    root = tmp / "yolo"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    images = images if images is not None else {"a.png": rgb_png}
    for name, make in images.items():
        make(root / "images" / "train" / name)
    for name, text in (labels if labels is not None else {"a.txt": GOOD}).items():
        (root / "labels" / "train" / name).write_text(text)
    text = yaml_text if yaml_text is not None else "path: .\ntrain: images/train\nval: images/train\nnames: [a, b]\n"
    (root / "data.yaml").write_text(text)
    return root / "data.yaml"


def coco_set(tmp: Path, mutate: Callable[[dict], None] | None = None, raw: str | None = None,
             categories: list[dict] | None = None) -> Path:
    """One 16x16 image with one polygon instance in ``annotations/instances.json``; ``mutate`` edits the json."""
    root = tmp / "coco"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    rgb_png(root / "images" / "a.png", 16, 16)
    data = {"images": [{"id": 1, "file_name": "a.png", "height": 16, "width": 16}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 6],
                             "segmentation": [[2, 2, 10, 2, 10, 8, 2, 8]]}],
            "categories": categories or [{"id": 1, "name": "a"}]}
    if mutate:
        mutate(data)
    (root / "annotations" / "instances.json").write_text(raw if raw is not None else json.dumps(data))
    split = "{images: images, annotations: annotations/instances.json}"
    (root / "data.yaml").write_text(f"path: .\ntrain: {split}\nval: {split}\n")
    return root / "data.yaml"


def write_bytes(data: bytes) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(data)


def truncated_png(path: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def bomb_png(path: Path) -> None:
    """A valid PNG header declaring 20000 x 20000 RGB (4e8 px, over PIL's 2 x 89.5e6 px limit) and no pixels:
    PIL refuses it at open, before allocating anything."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))


def cmyk_jpeg(path: Path) -> None:
    Image.fromarray(np.full((20, 40, 3), (200, 40, 40), np.uint8)).convert("CMYK").save(path, quality=100)


def gray16_png(path: Path) -> None:
    Image.fromarray(np.full((20, 40), 0xAB77, np.uint16)).save(path)


def gray_png(path: Path) -> None:
    Image.fromarray(np.full((20, 40), 77, np.uint8)).save(path)


def rgba_png(path: Path) -> None:
    Image.fromarray(np.full((20, 40, 4), (10, 20, 30, 0), np.uint8)).save(path)


def exif_rotated_jpeg(path: Path) -> None:
    """Stored 40 wide x 20 high with EXIF orientation 6 (shown rotated 90 degrees clockwise: 20 x 40). The stored
    left half becomes the top half of the upright image; it is red."""
    a = np.full((20, 40, 3), 30, np.uint8)
    a[:, :20] = (220, 20, 20)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(path, exif=exif.tobytes(), quality=95)


# -- recovery checks (on the built dataset, its first item, and the check-data report) ---------------------------
def centre(item) -> list[int]:
    return item["img"][:, 32, 32].tolist()


def check_cmyk(ds, item, report):
    assert np.allclose(centre(item), (200, 40, 40), atol=8), centre(item)


def check_gray16(ds, item, report):
    assert (read_image(ds.records[0].file) == 0xAB).all() and centre(item) == [0xAB] * 3


def check_gray(ds, item, report):
    assert centre(item) == [77, 77, 77]


def check_rgba(ds, item, report):
    assert centre(item) == [10, 20, 30]


def check_one_pixel(ds, item, report):
    assert item["orig_shape"] == (1, 1) and item["ratio_pad"] == ((64.0, 64.0), (0.0, 0.0))
    assert (item["img"] == item["img"][:, :1, :1]).all() and item["img"][:, 0, 0].tolist() == [60, 120, 180]


def check_exif(ds, item, report):
    assert read_image(ds.records[0].file).shape == (40, 20, 3) and item["orig_shape"] == (40, 20)
    img = item["img"].int()  # 20 x 40 upright -> 32 x 64 on the canvas, 16 columns of padding left
    assert item["ratio_pad"] == ((1.6, 1.6), (16.0, 0.0))
    assert img[0, 10, 32] - img[1, 10, 32] > 100 and abs(int(img[0, 54, 32] - img[1, 54, 32])) < 20
    np.testing.assert_allclose(item["boxes"].numpy(), [[0.5, 0.25, 0.5, 0.5]], atol=1e-6)


def check_duplicates(ds, item, report):
    assert ds.records[0].cls.tolist() == [0]
    assert any(w["message"] == "1 duplicate row(s) dropped (line 2)" for w in report["warnings"])


def check_one_point(ds, item, report):
    assert ds.records[0].cls.tolist() == [0] and report["splits"]["train"]["dropped_polygons"] == 1


def check_category_ids(ds, item, report):
    assert ds.names == ["a", "b", "c"] and ds.class_to_category == [1, 3, 90]
    assert ds.records[0].cls.tolist() == [2]  # category 90 is contiguous class 2


def check_crowd(ds, item, report):
    assert ds.records[0].cls.tolist() == [0]  # the crowd region is not a training target...
    gt = ds.coco_gt()
    assert sorted(a["iscrowd"] for a in gt.loadAnns(gt.getAnnIds())) == [0, 1]  # ...but stays in the eval GT


def _add_crowd(d: dict) -> None:
    d["annotations"].append({"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 10, 16, 6], "iscrowd": 1,
                             "segmentation": {"size": [16, 16], "counts": [10, 6, 10, 6, 10, 6, 10, 6, 10, 6, 10,
                                                                           6, 10, 6, 10, 6, 10, 6, 10, 6, 10, 6,
                                                                           10, 6, 10, 6, 10, 6, 10, 6, 10, 6]}})


def _set(path: str, value) -> Callable[[dict], None]:
    """A json mutation: ``"annotations.0.bbox"`` -> value (``...`` deletes the key)."""
    def mutate(d: dict) -> None:
        *head, last = path.split(".")
        for k in head:
            d = d[int(k)] if k.isdigit() else d[k]
        key = int(last) if last.isdigit() else last
        if value is ...:
            del d[key]
        else:
            d[key] = value
    return mutate


def _append(path: str, item: dict) -> Callable[[dict], None]:
    return lambda d: d[path].append(item)


# -- the corpus -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One bad input. ``error``: regex of the one-line message, which must also name ``file``; otherwise
    ``recovery`` says what gradpath does and ``check`` verifies it."""

    id: str
    group: str
    input: str
    make: Callable[[Path], Path]
    file: str = ""
    error: str | None = None
    recovery: str | None = None
    check: Callable | None = None
    split: str = "train"

    @property
    def outcome(self) -> str:
        return f"error: {self.error}" if self.error else self.recovery


CASES: list[Case] = [
    # images
    Case("image-corrupt", "image", "random bytes named .png",
         lambda t: yolo_set(t, {"a.png": write_bytes(b"\x89PNG not really" * 8)}),
         "images/train/a.png", r"corrupt or unreadable image \(not a format PIL can identify\)$"),
    Case("image-truncated", "image", "a PNG cut in half", lambda t: yolo_set(t, {"a.png": truncated_png}),
         "images/train/a.png", r"corrupt or unreadable image \(image file is truncated"),
    Case("image-empty", "image", "a 0-byte .png", lambda t: yolo_set(t, {"a.png": write_bytes(b"")}),
         "images/train/a.png", r"empty image file \(0 bytes\)"),
    Case("image-bomb", "image", "a PNG declaring 20000 x 20000 px", lambda t: yolo_set(t, {"a.png": bomb_png}),
         "images/train/a.png", r"image too large, refused as a possible decompression bomb \(Image size "
                               r"\(400000000 pixels\)"),
    Case("image-cmyk", "image", "a CMYK JPEG", lambda t: yolo_set(t, {"a.jpg": cmyk_jpeg}),
         recovery="converted to RGB", check=check_cmyk),
    Case("image-16bit", "image", "a 16-bit greyscale PNG", lambda t: yolo_set(t, {"a.png": gray16_png}),
         recovery="reduced to 8 bits (high byte, as OpenCV does), grey in all 3 channels", check=check_gray16),
    Case("image-gray", "image", "an 8-bit greyscale PNG", lambda t: yolo_set(t, {"a.png": gray_png}),
         recovery="grey copied to the 3 channels", check=check_gray),
    Case("image-rgba", "image", "an RGBA PNG (alpha 0)", lambda t: yolo_set(t, {"a.png": rgba_png}),
         recovery="alpha dropped, colour kept (as OpenCV does)", check=check_rgba),
    Case("image-1x1", "image", "a 1 x 1 px image", lambda t: yolo_set(t, {"a.png": lambda p: rgb_png(p, 1, 1)}),
         recovery="letterboxed like any other image (scaled 64x)", check=check_one_pixel),
    Case("image-exif", "image", "a JPEG stored sideways with EXIF orientation 6",
         lambda t: yolo_set(t, {"a.jpg": exif_rotated_jpeg}, {"a.txt": "0 0.5 0.25 1.0 0.5\n"}),
         recovery="read upright (labels refer to the upright image, as in ultralytics)", check=check_exif),
    # YOLO labels
    Case("yolo-class-range", "YOLO labels", "class id 5 with 2 names",
         lambda t: yolo_set(t, labels={"a.txt": "5 0.5 0.5 0.2 0.2\n"}),
         "labels/train/a.txt", r"line 1: class id 5 out of range 0\.\.1"),
    Case("yolo-nan", "YOLO labels", "a NaN coordinate", lambda t: yolo_set(t, labels={"a.txt": "0 nan 0.5 0.2 0.2\n"}),
         "labels/train/a.txt", r"line 1: non-finite number"),
    Case("yolo-not-normalized", "YOLO labels", "pixel coordinates (> 1)",
         lambda t: yolo_set(t, labels={"a.txt": "0 20 10 5 5\n"}),
         "labels/train/a.txt", r"line 1: coordinates outside \[0, 1\] \(labels must be normalized\)"),
    Case("yolo-columns", "YOLO labels", "a row of 4 values", lambda t: yolo_set(t, labels={"a.txt": "0 0.5 0.5 0.2\n"}),
         "labels/train/a.txt", r"line 1: expected 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 \.\.\.', got 4 values"),
    Case("yolo-text", "YOLO labels", "a word among the numbers",
         lambda t: yolo_set(t, labels={"a.txt": GOOD + "1 abc 0.5 0.1 0.1\n"}),
         "labels/train/a.txt", r"line 2: not all numbers"),
    Case("yolo-orphan", "YOLO labels", "a label file without an image",
         lambda t: yolo_set(t, labels={"a.txt": GOOD, "ghost.txt": GOOD}),
         "labels/train/ghost.txt", r"label file has no matching image"),
    Case("yolo-duplicates", "YOLO labels", "the same row twice",
         lambda t: yolo_set(t, labels={"a.txt": GOOD + GOOD}),
         recovery="the duplicate is dropped with a warning (as YOLOv5 does)", check=check_duplicates),
    Case("yolo-one-point", "YOLO labels", "a polygon of one point",
         lambda t: yolo_set(t, labels={"a.txt": GOOD + "1 0.3 0.3\n"}),
         recovery="the row is dropped with a warning, counted by check-data", check=check_one_point),
    # COCO json
    Case("coco-not-json", "COCO json", "a text file that is not JSON", lambda t: coco_set(t, raw="images: none"),
         "annotations/instances.json", r"not valid JSON: Expecting value at line 1"),
    Case("coco-not-object", "COCO json", "a JSON list", lambda t: coco_set(t, raw="[1, 2]"),
         "instances.json", r"expected a JSON object with images, annotations, categories"),
    Case("coco-missing-top", "COCO json", "no 'annotations' key", lambda t: coco_set(t, _set("annotations", ...)),
         "instances.json", r"missing top-level key 'annotations'"),
    Case("coco-missing-bbox", "COCO json", "an annotation without 'bbox'",
         lambda t: coco_set(t, _set("annotations.0.bbox", ...)), "instances.json", r"annotation 1 has no 'bbox'"),
    Case("coco-missing-file-name", "COCO json", "an image without 'file_name'",
         lambda t: coco_set(t, _set("images.0.file_name", ...)), "instances.json", r"image 1 has no 'file_name'"),
    Case("coco-duplicate-image", "COCO json", "two images with id 1",
         lambda t: coco_set(t, _append("images", {"id": 1, "file_name": "a.png", "height": 16, "width": 16})),
         "instances.json", r"image id 1 appears twice"),
    Case("coco-duplicate-annotation", "COCO json", "two annotations with id 1",
         lambda t: coco_set(t, _append("annotations", {"id": 1, "image_id": 1, "category_id": 1,
                                                        "bbox": [1, 1, 4, 4]})),
         "instances.json", r"annotation id 1 appears twice"),
    Case("coco-absent-image", "COCO json", "an annotation of image 7, not in 'images'",
         lambda t: coco_set(t, _set("annotations.0.image_id", 7)), "instances.json",
         r"annotation 1: image_id 7 is not in 'images'"),
    Case("coco-unknown-category", "COCO json", "an annotation of category 5, not in 'categories'",
         lambda t: coco_set(t, _set("annotations.0.category_id", 5)), "instances.json",
         r"annotation 1: category_id 5 is not in 'categories'"),
    Case("coco-negative-bbox", "COCO json", "a bbox of width -8",
         lambda t: coco_set(t, _set("annotations.0.bbox", [10, 2, -8, 6])), "instances.json",
         r"annotation 1: 'bbox' width and height must be >= 0, got \[10, 2, -8, 6\]"),
    Case("coco-segmentation-type", "COCO json", "a segmentation that is a string",
         lambda t: coco_set(t, _set("annotations.0.segmentation", "polygon")), "instances.json",
         r"annotation 1: 'segmentation' must be a list of polygons or an RLE dict"),
    Case("coco-iscrowd-type", "COCO json", "iscrowd \"yes\"",
         lambda t: coco_set(t, _set("annotations.0.iscrowd", "yes")), "instances.json",
         r"annotation 1: 'iscrowd' must be 0 or 1"),
    Case("coco-id-type", "COCO json", "an image_id that is a list",
         lambda t: coco_set(t, _set("annotations.0.image_id", [1])), "instances.json",
         r"annotation 0: 'image_id' must be an integer, got \[1\]"),
    Case("coco-missing-image-file", "COCO json", "an image listed but not on disk",
         lambda t: coco_set(t, _set("images.0.file_name", "gone.png")), "images/gone.png",
         r"image file not found \(image 1 in instances.json\)"),
    Case("coco-category-ids", "COCO json", "category ids 1, 3, 90 (not contiguous)",
         lambda t: coco_set(t, _set("annotations.0.category_id", 90),
                            categories=[{"id": 3, "name": "b"}, {"id": 90, "name": "c"}, {"id": 1, "name": "a"}]),
         recovery="classes 0, 1, 2 in ascending id order; predictions are written back with the real ids",
         check=check_category_ids),
    Case("coco-rle-crowd", "COCO json", "an uncompressed-RLE crowd region", lambda t: coco_set(t, _add_crowd),
         recovery="kept in the evaluation ground truth (COCOeval ignores detections on it), not a training target",
         check=check_crowd),
    Case("coco-short-polygon", "COCO json", "a polygon of 2 points",
         lambda t: coco_set(t, _set("annotations.0.segmentation", [[2, 2, 10, 2]])),
         recovery="polygon dropped with a warning; the instance keeps its box as mask",
         check=lambda ds, item, report: ds.records[0].segments == [None] and len(item["cls"]) == 1),
    # dataset yaml
    Case("yaml-no-names", "dataset yaml", "no 'names' and no 'nc'",
         lambda t: yolo_set(t, yaml_text="train: images/train\nval: images/train\n"),
         "data.yaml", r"missing 'names' \(a list of class names, or \{id: name\}\)"),
    Case("yaml-nc-mismatch", "dataset yaml", "nc: 3 with 2 names",
         lambda t: yolo_set(t, yaml_text="train: images/train\nval: images/train\nnc: 3\nnames: [a, b]\n"),
         "data.yaml", r"'nc' is 3 but 'names' has 2 entries"),
    Case("yaml-nc-type", "dataset yaml", "nc: abc",
         lambda t: yolo_set(t, yaml_text="train: images/train\nval: images/train\nnc: abc\n"),
         "data.yaml", r"'nc' must be a positive integer, got 'abc'"),
    Case("yaml-names-type", "dataset yaml", "names: 5",
         lambda t: yolo_set(t, yaml_text="train: images/train\nval: images/train\nnames: 5\n"),
         "data.yaml", r"'names' must be a list or a \{id: name\} mapping, got int"),
    Case("yaml-split-type", "dataset yaml", "train: 5",
         lambda t: yolo_set(t, yaml_text="train: 5\nval: images/train\nnames: [a]\n"),
         "data.yaml", r"split 'train' must be an image folder, a list of them, or \{images: \.\.\., annotations"),
    Case("yaml-split-missing", "dataset yaml", "asking for split 'test' that the yaml does not define",
         lambda t: yolo_set(t), "data.yaml", r"no split 'test'; available: train, val", split="test"),
    Case("yaml-folder-missing", "dataset yaml", "train: a folder that does not exist",
         lambda t: yolo_set(t, yaml_text="train: images/nothere\nval: images/train\nnames: [a, b]\n"),
         "images/nothere", r"image folder not found"),
    Case("yaml-invalid", "dataset yaml", "broken YAML",
         lambda t: yolo_set(t, yaml_text="train: [images/train\nval: x\n"),
         "data.yaml", r"invalid YAML at line \d"),
]


def _load(case: Case, tmp_path: Path):
    yaml_path = case.make(tmp_path)
    ds = build_dataset(yaml_path, case.split, imgsz=64)
    items = [ds[i] for i in range(len(ds))]  # decodes every image, as training would
    return yaml_path, ds, items


def test_cases_are_unique_and_complete():
    assert len({c.id for c in CASES}) == len(CASES) >= 30
    for c in CASES:
        assert (c.error is None) != (c.recovery is None) and (c.error is None) == (c.check is not None), c.id
        assert c.error is None or c.file, c.id


@pytest.mark.parametrize("case", [c for c in CASES if c.error], ids=lambda c: c.id)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_error_is_one_line_naming_the_file(case, tmp_path):
    with pytest.raises(GradpathError) as e:
        _load(case, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and case.file in msg and re.search(case.error, msg), msg


@pytest.mark.parametrize("case", [c for c in CASES if c.error], ids=lambda c: c.id)
def test_check_data_reports_the_error(case, tmp_path, capsys):
    """``check-data`` lists the same problem and exits 2 with one line on stderr (never a traceback)."""
    yaml_path = case.make(tmp_path)
    if case.split in ("train", "val"):
        rc = main(["check-data", str(yaml_path), "--split", case.split])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and err[0].startswith("gradpath check-data: error:"), err
    try:
        report = check_dataset(yaml_path, (case.split,))
    except GradpathError as e:  # the split itself does not exist
        assert case.file in str(e) and re.search(case.error, str(e))
        return
    lines = [f"{p['file']}: {p['message']}" for p in report["errors"]]
    assert not report["ok"] and any(case.file in ln and re.search(case.error, ln) for ln in lines), lines


@pytest.mark.parametrize("case", [c for c in CASES if c.recovery], ids=lambda c: c.id)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_recovery(case, tmp_path, capsys):
    yaml_path, ds, items = _load(case, tmp_path)
    report = check_dataset(yaml_path, ("train",))
    assert report["ok"], report["errors"]
    case.check(ds, items[0], report)
    assert main(["check-data", str(yaml_path), "--split", "train"]) == 0


def markdown_table(cases: list[Case] = CASES) -> str:
    """The corpus as a README table: input -> what gradpath does (errors show the message after the file name)."""
    rows = ["| group | input | what gradpath does |", "|---|---|---|"]
    for c in cases:
        message = re.sub(r"\\(.)", r"\1", c.error.replace(r"\d", "N").rstrip("$")) if c.error else ""
        outcome = f"error naming `{c.file}`: `{message}`" if c.error else c.recovery
        rows.append(f"| {c.group} | {c.input} | {outcome.replace('|', '/')} |")
    return "\n".join(rows)


def test_markdown_table_has_a_row_per_case():
    lines = markdown_table().splitlines()
    assert len(lines) == len(CASES) + 2 and all(ln.count(" | ") == 2 for ln in lines[2:])
    assert lines[4] == "| image | a 0-byte .png | error naming `images/train/a.png`: `empty image file (0 bytes)` |"
