"""YOLO txt labels: one ``class cx cy w h`` (box) or ``class x1 y1 x2 y2 x3 y3 ...`` (polygon) row per instance,
coordinates normalized to [0, 1]. Labels are found by replacing the last ``/images/`` with ``/labels/`` in the
image path (the ultralytics convention) or under an explicit ``labels:`` folder mirroring the image folder.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from gradpath.data.records import IMG_EXTS, ImageRecord, Problems

COORD_TOL = 0.01  # tolerated overshoot of normalized coordinates before it counts as an error


def list_images(sources: tuple[Path, ...], problems: Problems) -> list[tuple[Path, Path]]:
    """(image, base folder) pairs, sorted; a source is a folder (searched recursively) or a .txt list."""
    out: list[tuple[Path, Path]] = []
    for src in sources:
        if src.is_dir():
            for dirpath, _, files in os.walk(src):
                for f in files:
                    if f.lower().endswith(IMG_EXTS):
                        out.append((Path(dirpath) / f, src))
        elif src.is_file() and src.suffix == ".txt":
            for line in src.read_text().splitlines():
                line = line.strip()
                if line:
                    p = Path(line)
                    p = p if p.is_absolute() else (src.parent / p)
                    if not p.is_file():
                        problems.error(p, f"image file not found (listed in {src.name})")
                        continue
                    out.append((p, p.parent))
        else:
            problems.error(src, "image folder not found")
    return sorted(set(out))


def label_path(image: Path, base: Path, labels_dir: Path | None) -> Path:
    if labels_dir is not None:
        return (labels_dir / image.relative_to(base)).with_suffix(".txt")
    s = str(image)
    sep = f"{os.sep}images{os.sep}"
    if sep in s:
        head, tail = s.rsplit(sep, 1)
        return Path(f"{head}{os.sep}labels{os.sep}{tail}").with_suffix(".txt")
    return image.with_suffix(".txt")


def parse_label_file(path: Path, nc: int, problems: Problems) -> tuple[np.ndarray, np.ndarray, list] | None:
    """(cls, normalized xyxy boxes, segments) of one file; ``None`` when the file is malformed."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        problems.error(path, f"cannot read label file: {e}")
        return None
    cls, boxes, segs = [], [], []
    degenerate_lines: list[int] = []
    seen: dict[tuple[str, ...], int] = {}
    duplicates: list[int] = []
    for ln, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if tuple(parts) in seen:  # the same instance twice would be two targets for one object (YOLOv5 drops it)
            duplicates.append(ln)
            continue
        seen[tuple(parts)] = ln
        try:
            vals = [float(v) for v in parts]
        except ValueError:
            problems.error(path, f"line {ln}: not all numbers: {line.strip()[:60]!r}")
            return None
        if not all(math.isfinite(v) for v in vals):
            problems.error(path, f"line {ln}: non-finite number")
            return None
        c = vals[0]
        if c != int(c) or not 0 <= c < nc:
            problems.error(path, f"line {ln}: class id {parts[0]} out of range 0..{nc - 1}")
            return None
        coords = vals[1:]
        if any(v < -COORD_TOL or v > 1 + COORD_TOL for v in coords):
            problems.error(path, f"line {ln}: coordinates outside [0, 1] (labels must be normalized)")
            return None
        coords = [min(max(v, 0.0), 1.0) for v in coords]
        if len(coords) == 4:
            cx, cy, w, h = coords
            box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
            seg = None
        elif len(coords) % 2 == 0 and len(coords) >= 6:
            xs, ys = coords[0::2], coords[1::2]
            box = [min(xs), min(ys), max(xs), max(ys)]
            seg = [coords]
        elif len(coords) == 2:  # one point: no mask and no box (two points would read as a box row)
            degenerate_lines.append(ln)
            continue
        else:
            problems.error(path, f"line {ln}: expected 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 ...', "
                                 f"got {len(vals)} values")
            return None
        box = [min(max(v, 0.0), 1.0) for v in box]
        if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
            problems.warn(path, f"line {ln}: degenerate box (zero width or height); not used")
            continue
        cls.append(int(c))
        boxes.append(box)
        segs.append(seg)
    if duplicates:
        problems.warn(path, f"{len(duplicates)} duplicate row(s) dropped (line "
                            f"{', '.join(map(str, duplicates[:5]))}{', ...' if len(duplicates) > 5 else ''})")
    if degenerate_lines:
        problems.counts["degenerate_polygons"] += len(degenerate_lines)
        problems.warn(path, f"{len(degenerate_lines)} polygon(s) with fewer than 3 points dropped (line "
                            f"{', '.join(map(str, degenerate_lines[:5]))}{', ...' if len(degenerate_lines) > 5 else ''})")
    if not text.strip():
        problems.warn(path, "empty label file (image used as background)")
    return (np.array(cls, np.int64), np.array(boxes, np.float32).reshape(-1, 4), segs)


def parse_yolo_split(images: tuple[Path, ...], labels_dir: Path | None, nc: int,
                     problems: Problems) -> list[ImageRecord]:
    """Records for every image; an image without a label file is a background image. Label files with no image
    are an error: they usually mean the image folder is not the one the labels were made for."""
    pairs = list_images(images, problems)
    records = []
    expected: set[Path] = set()
    missing_labels = 0
    for k, (img, base) in enumerate(pairs):
        lp = label_path(img, base, labels_dir)
        expected.add(lp.resolve())
        cls, boxes, segs = np.zeros(0, np.int64), np.zeros((0, 4), np.float32), []
        if lp.is_file():
            parsed = parse_label_file(lp, nc, problems)
            if parsed is not None:
                cls, boxes, segs = parsed
        else:
            missing_labels += 1
        records.append(ImageRecord(file=img, image_id=k + 1, cls=cls, boxes=boxes, segments=segs, normalized=True))
    if missing_labels:
        problems.warn(images[0], f"{missing_labels} of {len(pairs)} images have no label file (used as background)")
    # label files whose image does not exist
    label_dirs = set()
    for src in images:
        if src.is_dir():
            d = labels_dir if labels_dir is not None else label_path(src / "x.png", src, None).parent
            if d.resolve() != src.resolve():  # labels beside the images: other .txt files may be anything
                label_dirs.add(d)
    orphans = []
    for d in label_dirs:
        if d.is_dir():
            for dirpath, _, files in os.walk(d):
                for f in files:
                    if f.endswith(".txt") and (Path(dirpath) / f).resolve() not in expected:
                        orphans.append(Path(dirpath) / f)
    for o in sorted(orphans):
        problems.error(o, "label file has no matching image")
    if not records:
        problems.error(images[0], "empty dataset: no images found")
    return records
