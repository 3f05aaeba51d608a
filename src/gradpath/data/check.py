"""``check_dataset``: every problem of a dataset at once, before any training starts.

The loaders stop at the first error (one line naming the file); this runs the same parsers leniently and also
decodes every image, so a user fixes all problems in one pass instead of one per training attempt.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from gradpath.data.config import load_data_config
from gradpath.data.dataset import parse_split
from gradpath.data.images import read_image
from gradpath.data.records import Problems
from gradpath.errors import DataError


def check_dataset(data: str | Path, splits: tuple[str, ...] | None = None, decode_images: bool = True) -> dict[str, Any]:
    """Report ``{"data", "ok", "splits": {name: {format, images, instances}}, "errors": [...], "warnings": [...]}``;
    each problem is ``{"file", "message"}``. ``ok`` is False when there is any error (warnings alone pass)."""
    report: dict[str, Any] = {"data": str(data), "ok": True, "splits": {}, "errors": [], "warnings": []}
    try:
        cfg = load_data_config(data)
    except DataError as e:
        report["ok"] = False
        report["errors"].append({"file": str(data), "message": str(e)})
        return report
    report["names"] = cfg.names
    for split in splits or tuple(cfg.splits):
        problems = Problems(strict=False, root=cfg.root)
        spec = cfg.split(split)
        records, _ = parse_split(cfg, split, problems)
        if decode_images:
            for rec in records:
                try:
                    img = read_image(rec.file)
                except DataError as e:
                    msg = str(e)
                    problems.error(rec.file, msg.split(": ", 1)[-1] if msg.startswith(f"{rec.file}: ") else msg)
                    continue
                h, w = img.shape[:2]
                if rec.height is not None and (rec.height, rec.width) != (h, w):
                    problems.error(rec.file, f"image is {w}x{h} but its annotations say {rec.width}x{rec.height}")
        if not records and not problems.errors:
            problems.error(spec.annotations or spec.images[0], f"empty dataset: split {split!r} has no images")
        report["splits"][split] = {"format": spec.format, "images": len(records),
                                   "instances": int(sum(len(r.cls) for r in records)),
                                   "dropped_polygons": int(problems.counts["degenerate_polygons"])}
        for p in problems.items:
            report["errors" if p.level == "error" else "warnings"].append(
                {"split": split, "file": p.file, "message": p.message})
    report["ok"] = not report["errors"]
    return report
