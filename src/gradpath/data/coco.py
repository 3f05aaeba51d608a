"""Native COCO instances json: boxes, polygons, RLE (compressed and uncompressed), ``iscrowd``.

Category ids (COCO's are 1..90 with gaps) map to contiguous classes in ascending id order; ``names`` come from the
categories when the yaml gives none. Crowd regions stay in the ground truth used for evaluation (COCOeval ignores
detections matched to them) but are never training targets, as in the COCO protocol the paper evaluates with.
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from gradpath.data.records import ImageRecord, Problems
from gradpath.errors import DataError

IMAGE_KEYS = ("id", "file_name", "height", "width")
ANN_KEYS = ("id", "image_id", "category_id", "bbox")


@functools.lru_cache(maxsize=4)
def _read_json_cached(path: str, mtime_ns: int, size: int) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{Path(path).name}: not valid JSON: {e.msg} at line {e.lineno}") from None
    except UnicodeDecodeError:
        raise DataError(f"{Path(path).name}: not a UTF-8 text file") from None


def read_coco_json(path: Path, problems: Problems | None = None) -> dict | None:
    """The parsed json (cached while the file is unchanged, so config + dataset read it once)."""
    problems = problems or Problems(strict=True)
    if not Path(path).is_file():
        problems.error(path, "annotation file not found")
        return None
    st = Path(path).stat()
    try:
        data = _read_json_cached(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)
    except DataError as e:  # named relative to the dataset root, like every other problem
        problems.error(path, str(e).split(": ", 1)[1])
        return None
    if not isinstance(data, dict):
        problems.error(path, "expected a JSON object with images, annotations, categories")
        return None
    for key in ("images", "annotations", "categories"):
        if key not in data:
            problems.error(path, f"missing top-level key '{key}'")
            return None
        if not isinstance(data[key], list):
            problems.error(path, f"'{key}' must be a list")
            return None
    return data


def _categories(data: dict, path: Path, problems: Problems) -> list[tuple[int, str]]:
    cats: dict[int, str] = {}
    for i, c in enumerate(data["categories"]):
        if not isinstance(c, dict) or "id" not in c:
            problems.error(path, f"category {i} has no 'id'")
            continue
        if "name" not in c:
            problems.error(path, f"category {c['id']} has no 'name'")
            continue
        if not isinstance(c["id"], int) or c["id"] in cats:
            problems.error(path, f"category id {c['id']!r} is not a unique integer")
            continue
        cats[c["id"]] = str(c["name"])
    if not cats and not problems.items:
        problems.error(path, "no categories")
    return sorted(cats.items())


def read_categories(path: Path, root: Path | None = None) -> list[tuple[int, str]]:
    """(category id, name) sorted by id: the contiguous class order."""
    problems = Problems(strict=True, root=root)
    data = read_coco_json(path, problems)
    return _categories(data, path, problems)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


INVALID = object()  # _check_segmentation's answer for a segmentation it reported as an error


def _check_segmentation(seg: Any, h: int, w: int, what: str, path: Path, problems: Problems,
                        degenerate: list[str]) -> Any:
    """Validated segmentation: a list of polygons, an RLE dict, None (box only), or ``INVALID`` (reported).

    A polygon with fewer than 3 points is dropped and ``what`` appended to ``degenerate`` (the caller writes one
    warning for all of them): real COCO-style files have such annotations, and one of them must not stop a
    whole dataset. When no polygon is left the instance keeps its box (its mask is then the box)."""
    if seg is None or (isinstance(seg, list) and len(seg) == 0):
        return None
    if isinstance(seg, list):
        polys = []
        for poly in seg:
            if not isinstance(poly, list) or not all(_is_num(v) for v in poly):
                problems.error(path, f"{what}: 'segmentation' polygons must be lists of numbers")
                return INVALID
            if len(poly) % 2:
                problems.error(path, f"{what}: polygon has an odd number of coordinates ({len(poly)})")
                return INVALID
            if len(poly) < 6:
                degenerate.append(what)
                continue
            polys.append([float(v) for v in poly])
        return polys or None
    if isinstance(seg, dict):
        if "counts" not in seg or "size" not in seg:
            problems.error(path, f"{what}: RLE 'segmentation' needs 'counts' and 'size'")
            return INVALID
        if not isinstance(seg["size"], list) or list(seg["size"]) != [h, w]:
            problems.error(path, f"{what}: RLE size {seg['size']!r} differs from the image's [{h}, {w}]")
            return INVALID
        counts = seg["counts"]
        if isinstance(counts, list):
            if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != h * w:
                problems.error(path, f"{what}: uncompressed RLE counts must be non-negative integers summing to "
                                     f"height*width = {h * w}")
                return INVALID
            return mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        if isinstance(counts, (str, bytes)):
            return {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        problems.error(path, f"{what}: RLE 'counts' must be a list or a string")
        return INVALID
    problems.error(path, f"{what}: 'segmentation' must be a list of polygons or an RLE dict")
    return INVALID


def parse_coco_split(ann_file: Path, images_dir: Path, category_ids: list[int], problems: Problems,
                     check_files: bool = True) -> tuple[list[ImageRecord], dict | None]:
    """Records for training plus a sanitized copy of the json for ``pycocotools.coco.COCO`` (areas filled in,
    ``iscrowd`` defaulted), so evaluation sees the same annotations the user wrote."""
    data = read_coco_json(ann_file, problems)
    if data is None:
        return [], None
    cat_index = {c: i for i, c in enumerate(category_ids)}
    images: dict[int, dict] = {}
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict):
            problems.error(ann_file, f"image {i} is not an object")
            continue
        missing = [k for k in IMAGE_KEYS if k not in im]
        if missing:
            ident = f"image {im['id']}" if "id" in im else f"image {i}"
            problems.error(ann_file, f"{ident} has no '{missing[0]}'")
            continue
        if not _is_int(im["id"]):
            problems.error(ann_file, f"image {i}: 'id' must be an integer, got {im['id']!r}")
            continue
        if im["id"] in images:
            problems.error(ann_file, f"image id {im['id']} appears twice")
            continue
        if not isinstance(im["file_name"], str) or not im["file_name"]:
            problems.error(ann_file, f"image {im['id']}: 'file_name' must be a non-empty string")
            continue
        if not (_is_int(im["height"]) and _is_int(im["width"]) and im["height"] > 0 and im["width"] > 0):
            problems.error(ann_file, f"image {im['id']}: height/width must be positive integers")
            continue
        images[im["id"]] = im
    if not images:
        problems.error(ann_file, "empty dataset: no images")
        return [], None

    per_image: dict[int, list[tuple[int, np.ndarray, Any]]] = {k: [] for k in images}
    gt_anns = []
    n_degenerate = 0
    degenerate_polys: list[str] = []
    ann_ids: set[int] = set()
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            problems.error(ann_file, f"annotation {i} is not an object")
            continue
        what = f"annotation {ann['id']}" if "id" in ann else f"annotation {i}"
        missing = [k for k in ANN_KEYS if k not in ann]
        if missing:
            problems.error(ann_file, f"{what} has no '{missing[0]}'")
            continue
        bad = next((k for k in ("id", "image_id", "category_id") if not _is_int(ann[k])), None)
        if bad is not None:
            problems.error(ann_file, f"annotation {i}: '{bad}' must be an integer, got {ann[bad]!r}")
            continue
        if ann["id"] in ann_ids:  # COCOeval indexes annotations by id: a duplicate would replace the other
            problems.error(ann_file, f"annotation id {ann['id']} appears twice")
            continue
        ann_ids.add(ann["id"])
        im = images.get(ann["image_id"])
        if im is None:
            problems.error(ann_file, f"{what}: image_id {ann['image_id']} is not in 'images'")
            continue
        if ann["category_id"] not in cat_index:
            problems.error(ann_file, f"{what}: category_id {ann['category_id']} is not in 'categories'")
            continue
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_num(v) for v in bbox)):
            problems.error(ann_file, f"{what}: 'bbox' must be 4 numbers [x, y, w, h], got {bbox!r}")
            continue
        if bbox[2] < 0 or bbox[3] < 0:
            problems.error(ann_file, f"{what}: 'bbox' width and height must be >= 0, got {bbox!r}")
            continue
        h, w = im["height"], im["width"]
        n_before = len(degenerate_polys)
        seg = _check_segmentation(ann.get("segmentation"), h, w, what, ann_file, problems, degenerate_polys)
        if seg is INVALID:
            continue  # reported above
        crowd = ann.get("iscrowd", 0)
        if isinstance(crowd, bool) or crowd not in (0, 1):
            problems.error(ann_file, f"{what}: 'iscrowd' must be 0 or 1")
            continue
        crowd = int(crowd)
        x, y, bw, bh = (float(v) for v in bbox)
        x1, y1 = min(max(x, 0.0), w), min(max(y, 0.0), h)
        x2, y2 = min(max(x + bw, 0.0), w), min(max(y + bh, 0.0), h)
        gt = dict(ann)
        gt["iscrowd"] = crowd
        if len(degenerate_polys) > n_before:  # evaluate against what is trained on: the valid polygons, or the box
            gt["segmentation"] = seg if seg is not None else [[x1, y1, x2, y1, x2, y2, x1, y2]]
        if "area" not in gt:
            if seg is not None:
                rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list) else seg
                gt["area"] = float(mask_utils.area(rle))
            else:
                gt["area"] = bw * bh
        gt_anns.append(gt)
        if crowd:
            continue
        if x2 - x1 < 1 or y2 - y1 < 1:
            n_degenerate += 1
            problems.warn(ann_file, f"{what}: degenerate box {bbox} (w or h < 1 px inside the image); "
                                    "not used for training")
            continue
        per_image[ann["image_id"]].append((cat_index[ann["category_id"]], np.array([x1, y1, x2, y2], np.float32),
                                           seg))

    if degenerate_polys:
        problems.counts["degenerate_polygons"] += len(degenerate_polys)
        shown = ", ".join(degenerate_polys[:5]) + (", ..." if len(degenerate_polys) > 5 else "")
        problems.warn(ann_file, f"{len(degenerate_polys)} polygon(s) with fewer than 3 points dropped ({shown}); "
                                "their instances keep their boxes")
    records = []
    for img_id, im in images.items():
        file = Path(images_dir) / im["file_name"]
        if check_files and not file.is_file():
            problems.error(file, f"image file not found (image {img_id} in {Path(ann_file).name})")
            continue
        insts = per_image[img_id]
        records.append(ImageRecord(
            file=file, image_id=int(img_id), height=im["height"], width=im["width"],
            cls=np.array([c for c, _, _ in insts], np.int64),
            boxes=np.stack([b for _, b, _ in insts]) if insts else np.zeros((0, 4), np.float32),
            segments=[s for _, _, s in insts],
        ))
    gt = {"info": data.get("info", {}), "licenses": data.get("licenses", []), "images": list(images.values()),
          "annotations": gt_anns, "categories": [c for c in data["categories"] if isinstance(c, dict)]}
    return records, gt
