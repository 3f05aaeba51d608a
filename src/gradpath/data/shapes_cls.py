"""``shapes-cls``: the embedded classification set, so ``--data shapes-cls`` needs no download.

Why it is built this way: Table 2's claim (CSP keeps accuracy at fewer FLOPs) can only be tested on a set the
scaled-down classifiers do not saturate in a few CPU minutes, and on which more capacity pays. So a class is a
*combination* of three factors of one **target** object — colour family (warm / cool) × fill pattern (outline,
solid, striped) × shape (circle, cross, square, star, triangle): 30 classes — and each image adds what makes
that combination hard to read:

- **distractors**: smaller objects drawn from the same vocabulary (any shape, pattern and hue), in front of or
  behind the target; the label belongs to the large object, so the network has to relate sizes, not just detect
  features. A distractor may hide at most ``max_hidden`` of the target, so the label stays readable;
- **occlusion by the frame**: the target's centre wanders off the image centre and it may be cut by the border;
- **clutter**: a low-frequency colour field and random lines as background;
- **colour jitter and noise**: per-image brightness/contrast gains, saturation and value ranges, Gaussian noise.

The default set is 200 train + 50 val images per class (6000 / 1500) at 64 px: 64 px is the smallest size at
which a 6-10 px stripe period, a 1.5-3 px outline and a star's points survive, and the cheapest for CPU training;
1500 val images give a top-1 standard error of about 1.2 points. Generating it takes about 64 s at version 3 (8.6
ms per image, one process; 7.0 ms of it rendering), once per machine since it is cached: the outline's erosion
(a PIL MinFilter on the supersampled mask) made it 2.8x slower than version 2's 23 s.

Calibration. Versions 1 and 2 filled the target with checker / solid / striped (``scripts/calibrate_shapes_cls.py``,
AdamW 10 epochs: colour learnt in one epoch, solid vs patterned at once, the shape after about 5 epochs, and
checker vs striped still near chance, at either pattern scale tried). Trained longer, checker vs striped is learnt
*suddenly, at a time that depends on the seed*, and that decided the seed spread of Table 2's recipe
(``scripts/shapes_cls_factors.py`` counts a run's errors by factor): csp-darknet53 at width 0.125, 30 epochs, 3
seeds ended at 79.1 / 89.0 / 89.2% top-1 with 208 / 10 / 17 pattern errors (of 1500 images) and 117-157 shape
errors each; an AdamW probe split 90.0 / 59.5% with 4 against 495 pattern errors. A seed's luck with one texture
cue, not the network, would have decided Table 2. Version 3 replaces the checker fill by an **outline** (a ring of
1.5-3 px along the edge, the background showing inside), which every seed learns early; the difficulty left is
the shape of the large object among distractors, the factor on which capacity pays. Same recipe, 3 seeds
(docs/results/seed-noise/classify-v3-w0.125-csp-darknet53.md): 86.5 ± 4.4% top-1 (89.7 / 88.4 / 81.5), pattern
errors 10-17 in every seed; the spread left is in the shape errors (144 / 170 / 272), still falling at epoch 30.

Objects are drawn at twice the output size and downsampled (box filter), so edges are anti-aliased.

Generation is deterministic: image ``k`` of class ``c`` in a split draws from
``numpy.random.default_rng([seed, split, c, k])``, so the same arguments give byte-identical PNGs. The set is
written once in the ImageNet layout (``train/<class>/*.png``, ``val/<class>/*.png``, read by
``gradpath.data.classify``) to a temporary folder renamed into place, so an interrupted run never leaves a
half-written cache; ``shapes_cls.json`` (written last) records the settings.
"""
from __future__ import annotations

import colorsys
import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from gradpath.data.generated import generate_once
from gradpath.data.shapes import cache_dir, most_distinct_colour
from gradpath.errors import DataError

__all__ = ["GENERATOR_VERSION", "META_FILE", "COLOURS", "PATTERNS", "SHAPES", "DEFAULTS", "DIFFICULTY", "class_names",
           "render_image", "make_shapes_cls", "default_shapes_cls_root"]

META_FILE = "shapes_cls.json"  # written last into a complete set; its presence marks a folder as a generated set
GENERATOR_VERSION = 3  # 2: coarser patterns; 3: "outline" replaces "checker" (see the module docstring)
COLOURS = ("cool", "warm")
PATTERNS = ("outline", "solid", "striped")
SHAPES = ("circle", "cross", "square", "star", "triangle")
DEFAULTS = dict(n_train=200, n_val=50, imgsz=64, seed=0)

# Hue ranges in degrees; the gap between them (55-160 and 260-335) is where a jittered colour would be ambiguous.
HUES = {"warm": (-25.0, 55.0), "cool": (160.0, 260.0)}
SUPERSAMPLE = 2

DIFFICULTY: dict[str, Any] = {
    "target_size": (0.5, 0.78),  # target diameter, fraction of the image side
    "target_offset": 0.18,  # max distance of the target centre from the image centre, fraction of the side
    "distractors": (0, 2),  # number of smaller same-vocabulary objects
    "distractor_size": (0.1, 0.22),  # their diameter, fraction of the side (always below the target's)
    "max_hidden": 0.3,  # a distractor in front may hide at most this fraction of the target
    "lines": (0, 6),  # background clutter lines
    "saturation": (0.45, 1.0),
    "value": (0.45, 1.0),
    "contrast": 0.25,  # per-image contrast gain 1 +/- contrast
    "brightness": 0.25,  # per-image brightness gain 1 +/- brightness
    "noise": 10.0,  # std of additive Gaussian noise, 0-255 scale
}


def class_names() -> list[str]:
    """``"<colour>-<pattern>-<shape>"`` in sorted order: the order ``load_classify_data`` gives the folders."""
    return sorted(f"{c}-{p}-{s}" for c, p, s in itertools.product(COLOURS, PATTERNS, SHAPES))


def _outline(shape: str, cx: float, cy: float, d: float, theta: float) -> list[tuple[float, float]]:
    """Vertices of a polygonal shape inscribed in a circle of diameter ``d`` centred at (cx, cy)."""
    r = d / 2
    if shape == "star":
        pts = [(r if k % 2 == 0 else 0.42 * r, theta + k * math.pi / 5) for k in range(10)]
    elif shape == "cross":  # a plus sign: arm half-width a, arm length r
        a = 0.3 * r
        corners = [(a, r), (a, a), (r, a), (r, -a), (a, -a), (a, -r), (-a, -r), (-a, -a), (-r, -a), (-r, a),
                   (-a, a), (-a, r)]
        return [(cx + x * math.cos(theta) - y * math.sin(theta), cy + x * math.sin(theta) + y * math.cos(theta))
                for x, y in corners]
    else:
        n = {"square": 4, "triangle": 3}[shape]
        pts = [(r, theta + 2 * math.pi * k / n) for k in range(n)]
    return [(cx + rr * math.cos(a), cy + rr * math.sin(a)) for rr, a in pts]


def _shape_mask(shape: str, size: int, cx: float, cy: float, d: float, theta: float) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    if shape == "circle":
        draw.ellipse([cx - d / 2, cy - d / 2, cx + d / 2, cy + d / 2], fill=255)
    else:
        draw.polygon(_outline(shape, cx, cy, d, theta), fill=255)
    return np.asarray(canvas) > 0


def _hsv(hue_deg: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((hue_deg % 360.0) / 360.0, s, v), np.float32) * 255.0


def _paint(img: np.ndarray, m: np.ndarray, rng: np.random.Generator, pattern: str, colour: np.ndarray,
           scale: float) -> None:
    """Fill the pixels ``m`` of ``img`` with ``pattern``: ``colour`` alternating with a dark version of it.

    ``scale`` is the supersampling factor, so pattern periods are in output pixels whatever the render size."""
    ys, xs = np.nonzero(m)
    a = rng.uniform(0, math.pi)
    if pattern == "solid":
        shade = 1.0 - rng.uniform(0.0, 0.2) * (ys - ys.min()) / max(int(np.ptp(ys)), 1)  # a soft gradient
        img[ys, xs] = colour[None, :] * shade[:, None].astype(np.float32)
        return
    if pattern == "outline":  # a ring 1.5-3 px wide along the edge; the background shows inside
        k = 2 * int(round(rng.uniform(1.5, 3.0) * scale)) + 1
        inner = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(k))) > 0
        ring = m & ~inner
        img[ring] = colour[None, :]
        return
    u = (xs * math.cos(a) + ys * math.sin(a)) / scale
    on = np.floor(u / rng.uniform(3.0, 5.0)) % 2 == 0  # striped, period 6-10 px
    dark = colour * rng.uniform(0.2, 0.45)
    img[ys, xs] = np.where(on[:, None], colour[None, :], dark[None, :])


def _background(rng: np.random.Generator, size: int, n_lines: int) -> np.ndarray:
    base = rng.integers(0, 256, 3).astype(np.float32)
    grid = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
    low = np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC), np.float32)
    bg = Image.fromarray(np.clip(base * 0.5 + low * 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(bg)
    for _ in range(n_lines):
        x0, y0, x1, y1 = (float(v) for v in rng.uniform(0, size, 4))
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.line([x0, y0, x1, y1], fill=col, width=int(rng.integers(1, 2 * SUPERSAMPLE + 1)))
    return np.array(bg, np.float32)


def _target_colour(rng: np.random.Generator, family: str, under: np.ndarray, diff: dict) -> np.ndarray:
    """A colour of ``family`` that stands out from the background under the target (best of 8 draws)."""
    return most_distinct_colour(
        lambda: _hsv(rng.uniform(*HUES[family]), rng.uniform(*diff["saturation"]), rng.uniform(*diff["value"])),
        under, 8)


def render_image(rng: np.random.Generator, imgsz: int, label: int, difficulty: dict | None = None) -> np.ndarray:
    """One (imgsz, imgsz, 3) uint8 image of class ``class_names()[label]``."""
    diff = {**DIFFICULTY, **(difficulty or {})}
    colour, pattern, shape = class_names()[label].split("-")
    S = imgsz * SUPERSAMPLE
    img = _background(rng, S, int(rng.integers(diff["lines"][0], diff["lines"][1] + 1)))

    d = float(rng.uniform(*diff["target_size"])) * S
    cx, cy = (S / 2 + float(v) * S for v in rng.uniform(-diff["target_offset"], diff["target_offset"], 2))
    target = _shape_mask(shape, S, cx, cy, d, float(rng.uniform(0, 2 * math.pi)))
    target_area = int(target.sum())

    n_dis = int(rng.integers(diff["distractors"][0], diff["distractors"][1] + 1))
    behind, front = [], []
    for _ in range(n_dis):
        in_front = bool(rng.random() < 0.5)
        for _attempt in range(10):
            dd = float(rng.uniform(*diff["distractor_size"])) * S
            x, y = (float(v) for v in rng.uniform(0, S, 2))
            m = _shape_mask(SHAPES[int(rng.integers(len(SHAPES)))], S, x, y, dd, float(rng.uniform(0, 2 * math.pi)))
            if not in_front or (m & target).sum() <= diff["max_hidden"] * target_area:
                break
        else:
            continue  # no placement leaves the target readable: one distractor fewer
        col = _hsv(rng.uniform(0, 360), rng.uniform(*diff["saturation"]), rng.uniform(*diff["value"]))
        (front if in_front else behind).append((m, PATTERNS[int(rng.integers(len(PATTERNS)))], col))

    for m, pat, col in behind:
        _paint(img, m, rng, pat, col, SUPERSAMPLE)
    under = img[target].mean(0) if target_area else img.mean((0, 1))
    _paint(img, target, rng, pattern, _target_colour(rng, colour, under, diff), SUPERSAMPLE)
    for m, pat, col in front:
        _paint(img, m, rng, pat, col, SUPERSAMPLE)

    small = np.asarray(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).resize((imgsz, imgsz), Image.BOX),
                       np.float32)
    mean = small.mean()
    gain = 1 + rng.uniform(-diff["contrast"], diff["contrast"])
    light = 1 + rng.uniform(-diff["brightness"], diff["brightness"])
    small = (small - mean) * gain + mean * light + rng.normal(0, diff["noise"], small.shape).astype(np.float32)
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def _meta(n_train: int, n_val: int, imgsz: int, seed: int, difficulty: dict) -> dict:
    return {"version": GENERATOR_VERSION, "n_train": n_train, "n_val": n_val, "imgsz": imgsz, "seed": seed,
            "classes": class_names(), "difficulty": {k: list(v) if isinstance(v, tuple) else v
                                                     for k, v in sorted(difficulty.items())}}


def _resolve_difficulty(difficulty: dict | None) -> dict:
    unknown = sorted(set(difficulty or {}) - set(DIFFICULTY))
    if unknown:
        raise DataError(f"shapes-cls: unknown difficulty key {unknown[0]!r}; known: {', '.join(DIFFICULTY)}")
    return {**DIFFICULTY, **(difficulty or {})}


def make_shapes_cls(root: str | Path, n_train: int = 200, n_val: int = 50, imgsz: int = 64, seed: int = 0,
                    difficulty: dict | None = None) -> Path:
    """Write the set to ``root`` unless it is already there; ``n_train`` / ``n_val`` are images **per class**.

    ``difficulty`` overrides entries of ``DIFFICULTY`` (for calibration). Returns ``root``. A folder generated
    with other settings is refused rather than silently reused.
    """
    root = Path(root).expanduser()
    if n_train < 1 or n_val < 1:
        raise DataError("shapes-cls: n_train and n_val (images per class) must be at least 1")
    if imgsz < 16:
        raise DataError(f"shapes-cls: imgsz must be at least 16, got {imgsz}")
    diff = _resolve_difficulty(difficulty)
    meta = _meta(n_train, n_val, imgsz, seed, diff)

    def write(tmp: Path) -> None:
        for split_idx, (split, n) in enumerate((("train", n_train), ("val", n_val))):
            for c, name in enumerate(class_names()):
                folder = tmp / split / name
                folder.mkdir(parents=True)
                for k in range(n):
                    img = render_image(np.random.default_rng([seed, split_idx, c, k]), imgsz, c, diff)
                    Image.fromarray(img).save(folder / f"{k:05d}.png", compress_level=1)
        (tmp / "data.yaml").write_text("# generated by gradpath.data.shapes_cls; see shapes_cls.json for the "
                                       "settings\npath: .\ntrain: train\nval: val\n")

    return generate_once(root, "shapes-cls", META_FILE, meta, write)


def default_shapes_cls_root(**overrides: Any) -> Path:
    """The cached set, generated on first use: ``$GRADPATH_CACHE/shapes-cls-<hash of version+settings>``."""
    kw = {**DEFAULTS, **overrides}
    diff = _resolve_difficulty(kw.pop("difficulty", None))
    meta = _meta(kw["n_train"], kw["n_val"], kw["imgsz"], kw["seed"], diff)
    digest = hashlib.sha1(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:10]
    root = cache_dir() / f"shapes-cls-{digest}"
    if not (root / META_FILE).is_file():
        make_shapes_cls(root, kw["n_train"], kw["n_val"], kw["imgsz"], kw["seed"], diff)
    return root
