"""``shapes``: the embedded synthetic instance-segmentation set, so ``--data shapes`` needs no download.

Each image holds several instances of a few shape classes with varied size, colour, rotation and overlap on a
textured background. Later shapes cover earlier ones and the masks say so (only the visible part is labelled);
placements that would hide more than half of an earlier shape are re-drawn, so every labelled instance stays
recognisable. Un-occluded polygonal shapes are written as COCO polygons and everything else (circles, occluded
shapes) as compressed RLE, so both annotation paths of the COCO reader are exercised by the default data.

Generation is deterministic: image ``i`` of a split draws from ``numpy.random.default_rng([seed, split, i])``, so
the same arguments give byte-identical PNGs and json. It is written once, to a temporary folder renamed into place,
so an interrupted run never leaves a half-written cache.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from gradpath.data.generated import generate_once
from gradpath.errors import DataError

GENERATOR_VERSION = 1
META_FILE = "shapes.json"  # written last into a complete set; its presence marks a folder as a generated set
CATALOGUE = ("circle", "square", "triangle", "pentagon", "star", "hexagon")
DEFAULTS = dict(n_train=600, n_val=100, size=256, classes=3, seed=0, objects=(2, 5), object_size=(24, 100))
MAX_HIDDEN = 0.5  # a new shape may hide at most this fraction of an earlier one


def _class_names(classes: int | Sequence[str]) -> list[str]:
    if isinstance(classes, int):
        if not 1 <= classes <= len(CATALOGUE):
            raise DataError(f"shapes: classes must be 1..{len(CATALOGUE)}, got {classes}")
        return list(CATALOGUE[:classes])
    names = [str(c) for c in classes]
    bad = [n for n in names if n not in CATALOGUE]
    if bad or not names or len(set(names)) != len(names):
        raise DataError(f"shapes: classes must be distinct names from {', '.join(CATALOGUE)}, got {names}")
    return names


def _polygon(kind: str, cx: float, cy: float, d: float, theta: float) -> list[float]:
    """Vertices of a shape inscribed in a circle of diameter ``d``, rounded to 0.01 px (as stored in json)."""
    r = d / 2
    if kind == "star":
        angles = [theta + k * math.pi / 5 for k in range(10)]
        radii = [r if k % 2 == 0 else r * 0.45 for k in range(10)]
    else:
        n = {"square": 4, "triangle": 3, "pentagon": 5, "hexagon": 6}[kind]
        angles = [theta + 2 * math.pi * k / n for k in range(n)]
        radii = [r] * n
    pts: list[float] = []
    for a, rr in zip(angles, radii):
        pts += [round(cx + rr * math.cos(a), 2), round(cy + rr * math.sin(a), 2)]
    return pts


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.integers(0, 256, 3).astype(np.float32)
    grid = (rng.random((5, 5, 3)) * 255).astype(np.uint8)
    low = np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC), np.float32)
    bg = Image.fromarray(np.clip(base * 0.55 + low * 0.45, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(bg)
    for _ in range(int(rng.integers(0, 7))):  # thin stripes: texture that is not an object
        x0, y0, x1, y1 = (float(v) for v in rng.uniform(0, size, 4))
        col = tuple(int(v) for v in np.clip(base + rng.normal(0, 40, 3), 0, 255))
        draw.line([x0, y0, x1, y1], fill=col, width=int(rng.integers(1, 4)))
    return np.asarray(bg, np.float32)


def most_distinct_colour(draw: Callable[[], np.ndarray], under: np.ndarray, tries: int) -> np.ndarray:
    """The first of up to ``tries`` colours from ``draw()`` whose L1 distance from ``under`` (the mean colour
    beneath the object) is at least 150, else the most distant one: objects must stand out from the background
    for their labels to be learnable, and both generated sets use it."""
    best, best_d = None, -1.0
    for _ in range(tries):
        c = draw()
        d = float(np.abs(c - under).sum())
        if d > best_d:
            best, best_d = c, d
        if d >= 150:
            break
    return best


def _colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """Any RGB colour that stands out from ``under`` (best of 10 draws)."""
    return most_distinct_colour(lambda: rng.integers(0, 256, 3).astype(np.float32), under, 10)


def render_image(rng: np.random.Generator, size: int, names: list[str], objects: tuple[int, int],
                 object_size: tuple[int, int]) -> tuple[np.ndarray, list[dict]]:
    """One image (H, W, 3) uint8 and its instances: dicts with class index, visible mask, polygon or None."""
    img = _background(rng, size)
    ids = np.full((size, size), -1, np.int16)
    insts: list[dict] = []
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        for _attempt in range(30):
            c = int(rng.integers(len(names)))
            d = float(rng.uniform(*object_size))
            cx, cy = (float(v) for v in rng.uniform(d / 2, size - d / 2, 2))
            theta = float(rng.uniform(0, 2 * math.pi))
            # work inside the shape's window only: the full image is 10-100x larger than one shape
            x0, y0 = max(int(cx - d / 2) - 1, 0), max(int(cy - d / 2) - 1, 0)
            x1, y1 = min(int(cx + d / 2) + 2, size), min(int(cy + d / 2) + 2, size)
            win = (slice(y0, y1), slice(x0, x1))
            if names[c] == "circle":
                poly = None
                yy, xx = np.ogrid[y0:y1, x0:x1]
                m = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= (d / 2) ** 2
            else:
                poly = _polygon(names[c], cx, cy, d, theta)
                m = mask_utils.decode(mask_utils.frPyObjects([poly], size, size))[win][..., 0].astype(bool)
            if m.sum() < 20:
                continue
            under = ids[win][m]
            if all((under == j).sum() <= MAX_HIDDEN * inst["full_area"] for j, inst in enumerate(insts)):
                break
        else:
            continue  # no acceptable placement: one object fewer
        col = _colour(rng, img[win][m].mean(0))
        shade = rng.uniform(0.8, 1.0)  # a soft vertical gradient so shapes are not perfectly flat
        g = 1 - (1 - shade) * (np.arange(y0, y1, dtype=np.float32) - y0) / max(y1 - y0, 1)
        patch = img[win]
        patch[m] = np.clip(col[None, :] * g[:, None, None].repeat(x1 - x0, 1)[m], 0, 255)
        ids[win][m] = len(insts)
        insts.append({"cls": c, "poly": poly, "full_area": int(m.sum())})
    img = img.astype(np.uint8)
    out = []
    for j, inst in enumerate(insts):
        vis = ids == j
        area = int(vis.sum())
        if area == 0:
            continue
        out.append({"cls": inst["cls"], "mask": vis, "poly": inst["poly"] if area == inst["full_area"] else None})
    return img, out


def _write_split(root: Path, split: str, split_idx: int, n: int, size: int, names: list[str], seed: int,
                 objects: tuple[int, int], object_size: tuple[int, int]) -> None:
    img_dir = root / "images" / split
    img_dir.mkdir(parents=True)
    images, anns = [], []
    for i in range(n):
        rng = np.random.default_rng([seed, split_idx, i])
        img, insts = render_image(rng, size, names, objects, object_size)
        fname = f"{i:06d}.png"
        Image.fromarray(img).save(img_dir / fname, compress_level=1)
        images.append({"id": i + 1, "file_name": fname, "height": size, "width": size})
        for inst in insts:
            vis = inst["mask"]
            ys, xs = np.nonzero(vis)
            x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            if inst["poly"] is not None:
                seg: object = [inst["poly"]]
            else:
                rle = mask_utils.encode(np.asfortranarray(vis.astype(np.uint8)))
                seg = {"size": [size, size], "counts": rle["counts"].decode("ascii")}
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": inst["cls"] + 1,
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "area": int(vis.sum()), "iscrowd": 0,
                         "segmentation": seg})
    (root / "annotations").mkdir(exist_ok=True)
    data = {"info": {"description": f"gradpath shapes v{GENERATOR_VERSION} ({split})"}, "images": images,
            "annotations": anns, "categories": [{"id": k + 1, "name": nm} for k, nm in enumerate(names)]}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))


def _meta(n_train: int, n_val: int, size: int, names: list[str], seed: int, objects: tuple[int, int],
          object_size: tuple[int, int]) -> dict:
    return {"version": GENERATOR_VERSION, "n_train": n_train, "n_val": n_val, "size": size, "classes": names,
            "seed": seed, "objects": list(objects), "object_size": list(object_size)}


def generate_shapes(root: str | Path, n_train: int = 600, n_val: int = 100, size: int = 256,
                    classes: int | Sequence[str] = 3, seed: int = 0, objects: tuple[int, int] = (2, 5),
                    object_size: tuple[int, int] = (24, 100)) -> Path:
    """Write the shapes set to ``root`` (COCO json + PNG, ``data.yaml``) unless it is already there.

    The defaults suit the CPU demo: 600 train / 100 val 256x256 images of 2-5 objects 24-100 px wide.
    Returns ``root``. A folder generated with other settings is refused rather than silently reused.
    """
    root = Path(root).expanduser()
    names = _class_names(classes)
    if not (0 < objects[0] <= objects[1]) or not (4 <= object_size[0] <= object_size[1] <= size):
        raise DataError(f"shapes: bad objects={objects} or object_size={object_size} for size {size}")
    if n_train < 1 or n_val < 1:
        raise DataError("shapes: n_train and n_val must be at least 1")
    meta = _meta(n_train, n_val, size, names, seed, tuple(objects), tuple(object_size))

    def write(tmp: Path) -> None:
        for split_idx, (split, n) in enumerate((("train", n_train), ("val", n_val))):
            _write_split(tmp, split, split_idx, n, size, names, seed, tuple(objects), tuple(object_size))
        (tmp / "data.yaml").write_text(
            "# generated by gradpath.data.shapes; see shapes.json for the settings\n"
            "path: .\n"
            "train: {images: images/train, annotations: annotations/instances_train.json}\n"
            "val: {images: images/val, annotations: annotations/instances_val.json}\n"
            f"names: [{', '.join(names)}]\n")

    return generate_once(root, "shapes", META_FILE, meta, write)


def cache_dir() -> Path:
    return Path(os.environ.get("GRADPATH_CACHE") or Path.home() / ".cache" / "gradpath").expanduser()


def default_shapes_root(**overrides: object) -> Path:
    """The cached default set, generated on first use: ``$GRADPATH_CACHE/shapes-<hash of version+settings>``."""
    kw = {**DEFAULTS, **overrides}
    names = _class_names(kw["classes"])  # type: ignore[arg-type]
    meta = _meta(kw["n_train"], kw["n_val"], kw["size"], names, kw["seed"], tuple(kw["objects"]),
                 tuple(kw["object_size"]))
    digest = hashlib.sha1(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:10]
    root = cache_dir() / f"shapes-{digest}"
    if not (root / META_FILE).is_file():
        generate_shapes(root, kw["n_train"], kw["n_val"], kw["size"], names, kw["seed"], tuple(kw["objects"]),
                        tuple(kw["object_size"]))
    return root
