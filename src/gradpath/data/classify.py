"""Image-classification data: ImageNet-layout folders (or a yaml naming them, or the embedded ``shapes-cls``),
the train/val transforms of the classification recipe, and the collate function.

Layout: ``<root>/train/<class>/*.png|jpg...`` and ``<root>/val/<class>/...``. Class ``i`` is the ``i``-th sorted
sub-folder of ``train`` (or the ``i``-th entry of the yaml's ``names``, which must name exactly those folders), so
indices never depend on the file system's listing order.

Transforms (both return uint8 CHW tensors; the task normalises on the device, as for detection):

- train: random-resized-crop, then a horizontal flip. The crop's area fraction is drawn from
  ``[crop_scale_min, crop_scale_max]`` and its aspect ratio log-uniformly from ``[crop_ratio_min, crop_ratio_max]``
  (the Inception/ImageNet recipe), with ten tries before falling back to a centre crop of the clamped ratio. The
  default minimum area is 0.35, not ImageNet's 0.08: on 64-px images an 8% crop is a 18-px patch that rarely
  still shows the object the label names.
- val: the short side resized to ``floor(imgsz / crop_fraction)`` (0.875: the ImageNet evaluation convention),
  then a centre crop of ``imgsz``.

Both resize with PIL bilinear (anti-aliased when shrinking), in one call that crops and resizes together for
training. NOTE: PIL rather than torchvision.transforms.v2 because it is faster on CPU: crop + resize + flip of a
64-px image took 100-140 us with PIL against 145-175 us with v2's ``resized_crop`` on a uint8 tensor (one
thread, shared 2-core machine; ``scripts/calibrate_shapes_cls.py --bench-transforms`` repeats the measurement).
"""
from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from gradpath.checks import read_yaml
from gradpath.data.config import dataset_root
from gradpath.data.images import IMAGE_SUFFIXES, read_image
from gradpath.data.shapes_cls import default_shapes_cls_root
from gradpath.errors import DataError, GradpathError, suggest

__all__ = ["CLASSIFY_HYP", "ClassifyData", "ClassifyDataset", "load_classify_data", "resolve_classify_hyp",
           "random_resized_crop_box", "eval_transform", "classify_collate"]

SPLITS = ("train", "val")

CLASSIFY_HYP = {
    "crop_scale_min": 0.35,  # random-resized-crop: smallest crop area, fraction of the image
    "crop_scale_max": 1.0,
    "crop_ratio_min": 3 / 4,  # crop aspect ratio (w / h) range
    "crop_ratio_max": 4 / 3,
    "fliplr": 0.5,  # probability of a horizontal flip
    "crop_fraction": 0.875,  # val: the centre crop is this fraction of the resized short side
}


def resolve_classify_hyp(hyp: dict | None) -> dict:
    """``CLASSIFY_HYP`` with the entries of ``hyp`` it knows (a training hyp dict also carries optimizer keys)."""
    out = dict(CLASSIFY_HYP)
    for k, v in (hyp or {}).items():
        if k not in CLASSIFY_HYP:
            continue
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            raise GradpathError(f"hyp {k!r} must be a number, got {v!r}.{suggest(k, CLASSIFY_HYP)}") from None
    if not 0 < out["crop_scale_min"] <= out["crop_scale_max"] <= 1:
        raise GradpathError(f"hyp crop_scale_min/crop_scale_max must satisfy 0 < min <= max <= 1, got "
                            f"{out['crop_scale_min']}, {out['crop_scale_max']}")
    if not 0 < out["crop_ratio_min"] <= out["crop_ratio_max"]:
        raise GradpathError(f"hyp crop_ratio_min/crop_ratio_max must satisfy 0 < min <= max, got "
                            f"{out['crop_ratio_min']}, {out['crop_ratio_max']}")
    if not 0 <= out["fliplr"] <= 1:
        raise GradpathError(f"hyp fliplr must be a probability in [0, 1], got {out['fliplr']}")
    if not 0 < out["crop_fraction"] <= 1:
        raise GradpathError(f"hyp crop_fraction must be in (0, 1], got {out['crop_fraction']}")
    return out


@dataclass(frozen=True)
class ClassifyData:
    """A resolved classification dataset. ``samples[split]`` lists ``(image path, class index)``, sorted by
    class then file name; ``names[i]`` is class ``i``."""

    root: Path
    train: Path
    val: Path
    names: tuple[str, ...]
    samples: dict[str, tuple[tuple[Path, int], ...]]
    file: Path | None = None

    @property
    def nc(self) -> int:
        return len(self.names)

    def folder(self, split: str) -> Path:
        if split not in SPLITS:
            raise DataError(f"{self.file or self.root}: no split {split!r}; available: train, val."
                            + suggest(split, SPLITS))
        return self.train if split == "train" else self.val


def _class_folders(folder: Path, where: str) -> list[str]:
    if not folder.is_dir():
        raise DataError(f"{where}: split folder {folder} does not exist")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{folder}: no class sub-folders; expected <split>/<class>/<images> (ImageNet layout)")
    return classes


def _scan_split(folder: Path, names: tuple[str, ...], skipped: list[Path]) -> tuple[tuple[Path, int], ...]:
    samples: list[tuple[Path, int]] = []
    for idx, name in enumerate(names):
        files = sorted(p for p in (folder / name).iterdir() if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        skipped += [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
        if not images:
            raise DataError(f"{folder / name}: class folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        samples += [(p, idx) for p in images]
    return tuple(samples)


def _from_folders(root: Path, train: Path, val: Path, names: list[str] | None, file: Path | None) -> ClassifyData:
    where = str(file or root)
    train_classes = _class_folders(train, where)
    val_classes = _class_folders(val, where)
    if set(val_classes) != set(train_classes):
        missing = sorted(set(train_classes) - set(val_classes))
        extra = sorted(set(val_classes) - set(train_classes))
        what = f"lacks class folder {missing[0]!r}" if missing else f"has class folder {extra[0]!r} not in train"
        more = len(missing) + len(extra) - 1
        raise DataError(f"{val}: {what}" + (f" (and {more} more mismatches)" if more else "")
                        + "; train and val must have the same classes")
    if names is not None:
        if len(set(names)) != len(names) or set(names) != set(train_classes):
            odd = sorted(set(names) ^ set(train_classes)) or ["(duplicates)"]
            raise DataError(f"{where}: 'names' must list the class folders of {train} exactly once each; "
                            f"differs at {odd[0]!r}")
    order = tuple(names if names is not None else train_classes)
    skipped: list[Path] = []
    samples = {"train": _scan_split(train, order, skipped), "val": _scan_split(val, order, skipped)}
    if skipped:
        warnings.warn(f"{root}: skipped {len(skipped)} non-image file(s), e.g. {skipped[0]}", stacklevel=3)
    return ClassifyData(root=root, train=train, val=val, names=order, samples=samples, file=file)


def _resolve(base: Path, p: Any) -> Path:
    path = Path(str(p)).expanduser()
    return path if path.is_absolute() else base / path


def _from_yaml(path: Path) -> ClassifyData:
    where = path.name
    raw = read_yaml(path, where)
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected a mapping with path, train, val and optional names")
    root = dataset_root(path, raw, where)
    splits = {}
    for s in SPLITS:
        if not isinstance(raw.get(s), (str, Path)):
            raise DataError(f"{where}: '{s}' must name the {s} folder (ImageNet layout: {s}/<class>/<images>)")
        splits[s] = _resolve(root, raw[s])
    names = raw.get("names")
    if isinstance(names, dict):
        try:
            by_id = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise DataError(f"{where}: 'names' keys must be integer class ids, got {list(names)[:5]}") from None
        if sorted(by_id) != list(range(len(by_id))):
            raise DataError(f"{where}: 'names' ids must be 0..{len(by_id) - 1} without gaps")
        names = [by_id[i] for i in range(len(by_id))]
    elif names is not None:
        if not isinstance(names, list):
            raise DataError(f"{where}: 'names' must be a list or a {{id: name}} mapping")
        names = [str(n) for n in names]
    return _from_folders(root, splits["train"], splits["val"], names, path.resolve())


def load_classify_data(data: str | Path | ClassifyData) -> ClassifyData:
    """``"shapes-cls"`` (generated once and cached), an ImageNet-layout folder, or a yaml with ``path``,
    ``train``, ``val`` (folders) and optional ``names``."""
    if isinstance(data, ClassifyData):
        return data
    if str(data) == "shapes-cls":
        root = default_shapes_cls_root()
        return _from_folders(root, root / "train", root / "val", None, None)
    path = Path(str(data)).expanduser()
    if path.is_file():
        return _from_yaml(path)
    if path.is_dir():
        if not (path / "train").is_dir():
            yamls = [p for p in (path / "data.yaml", path / "data.yml") if p.is_file()]
            if yamls:
                return _from_yaml(yamls[0])
            raise DataError(f"{path}: missing 'train' split folder (ImageNet layout: train/<class>/<images>)")
        if not (path / "val").is_dir():
            raise DataError(f"{path}: missing 'val' split folder (ImageNet layout: val/<class>/<images>)")
        root = path.resolve()
        return _from_folders(root, root / "train", root / "val", None, None)
    hint = " Did you mean: shapes-cls?" if "shape" in str(data).lower() else ""
    raise DataError(f"dataset {str(data)!r} not found: give an ImageNet-layout folder, a yaml or 'shapes-cls'.{hint}")


def random_resized_crop_box(h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float],
                            rng: random.Random) -> tuple[int, int, int, int]:
    """``(left, top, width, height)`` of a crop of area fraction in ``scale`` and aspect ratio (w/h) in ``ratio``
    (log-uniform); after ten misses, the largest centred crop whose ratio is clamped into ``ratio``."""
    area = h * w
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(*scale)
        r = math.exp(rng.uniform(log_lo, log_hi))
        cw, ch = int(round(math.sqrt(target * r))), int(round(math.sqrt(target / r)))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, w - cw), rng.randint(0, h - ch), cw, ch
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        ch, cw = h, int(round(h * ratio[1]))
    else:
        cw, ch = w, h
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def eval_transform(img: np.ndarray, imgsz: int, crop_fraction: float = 0.875) -> np.ndarray:
    """(H, W, 3) uint8 -> (imgsz, imgsz, 3): short side resized to ``floor(imgsz / crop_fraction)`` (long side
    in proportion, rounded), then the centre ``imgsz`` crop at offset ``round((side - imgsz) / 2)``."""
    h, w = img.shape[:2]
    short = max(math.floor(imgsz / crop_fraction), imgsz)
    nh, nw = (short, max(round(w * short / h), imgsz)) if h <= w else (max(round(h * short / w), imgsz), short)
    if (nh, nw) != (h, w):
        img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
    top, left = int(round((nh - imgsz) / 2)), int(round((nw - imgsz) / 2))
    return img[top:top + imgsz, left:left + imgsz]


class ClassifyDataset(Dataset):
    """``(img uint8 (3, imgsz, imgsz), label int)`` items of one split.

    Randomness comes from Python's ``random`` module, which DataLoader seeds per worker (a per-dataset generator
    would be copied into every worker and repeat itself). ``cache=True`` decodes every image once, here, and
    keeps it in RAM (about 12 KB per 64-px image: fine for ``shapes-cls``, not for ImageNet). Up front, not on
    first use: the training loader's workers live one epoch and a cache they filled dies with them, so a lazy cache
    decoded every image again each epoch; filled in this process, it reaches every worker (inherited on fork,
    pickled with the dataset on spawn). A corrupt image is then reported when the dataset is built."""

    def __init__(self, data: ClassifyData | str | Path, split: str, imgsz: int, augment: bool,
                 hyp: dict | None = None, cache: bool = False) -> None:
        if int(imgsz) != imgsz or imgsz < 8:
            raise GradpathError(f"imgsz must be an integer >= 8, got {imgsz}")
        self.data = load_classify_data(data)
        self.folder = self.data.folder(split)
        self.split = split
        self.samples = self.data.samples[split]
        self.names = list(self.data.names)
        self.imgsz = int(imgsz)
        self.augment = augment
        self.hyp = resolve_classify_hyp(hyp)
        self.cache = cache
        self._cache: dict[int, np.ndarray] = {}
        if cache:
            for i in range(len(self.samples)):
                self._cache[i] = read_image(self.samples[i][0])

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> np.ndarray:
        """The decoded (H, W, 3) uint8 image of sample ``i`` (from the RAM cache when enabled)."""
        return self._cache[i] if self.cache else read_image(self.samples[i][0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.load(i)
        if self.augment:
            hyp = self.hyp
            left, top, cw, ch = random_resized_crop_box(
                img.shape[0], img.shape[1], (hyp["crop_scale_min"], hyp["crop_scale_max"]),
                (hyp["crop_ratio_min"], hyp["crop_ratio_max"]), random)
            im = Image.fromarray(img).resize((self.imgsz, self.imgsz), Image.BILINEAR,
                                             box=(left, top, left + cw, top + ch))
            if random.random() < hyp["fliplr"]:
                im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            out = np.asarray(im)
        else:
            out = eval_transform(img, self.imgsz, self.hyp["crop_fraction"])
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1))), self.samples[i][1]


def classify_collate(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(imgs uint8 (B, 3, H, W), labels int64 (B,))``."""
    imgs, labels = zip(*items)
    return torch.stack(imgs), torch.tensor(labels, dtype=torch.int64)
