"""Dataset yaml in the ultralytics shape (``path``, ``train``, ``val``, ``names``), resolved to typed specs.

A split is an image folder (or a ``.txt`` list of images, or a list of either) with YOLO txt labels, optionally
``{images: ..., labels: ...}`` to give the label folder explicitly, or a COCO split
``{images: images/train, annotations: annotations/instances_train.json}`` read natively (no conversion step).
Relative paths resolve against ``path``, and ``path`` against the yaml's folder. ``load_data_config("shapes")``
generates (once) and returns the embedded synthetic set.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradpath.checks import read_yaml
from gradpath.data.coco import read_categories
from gradpath.data.shapes import default_shapes_root
from gradpath.errors import DataError, suggest

SPLITS = ("train", "val")


@dataclass(frozen=True)
class SplitSpec:
    """Where one split's images and labels are. ``format`` is ``"yolo"`` or ``"coco"``."""

    name: str
    format: str
    images: tuple[Path, ...]
    annotations: Path | None = None
    labels: Path | None = None


@dataclass(frozen=True)
class DataConfig:
    """A resolved dataset description; ``names[i]`` is contiguous class ``i``."""

    root: Path
    names: list[str]
    splits: dict[str, SplitSpec]
    file: Path | None = None
    category_ids: list[int] | None = field(default=None)  # COCO: contiguous class -> category id

    @property
    def nc(self) -> int:
        return len(self.names)

    def split(self, name: str) -> SplitSpec:
        if name not in self.splits:
            raise DataError(f"{self.file or self.root}: no split {name!r}; available: {', '.join(self.splits)}."
                            + suggest(name, self.splits))
        return self.splits[name]


def _resolve(root: Path, p: str | Path) -> Path:
    p = Path(str(p)).expanduser()
    return p if p.is_absolute() else root / p


def dataset_root(path: Path, raw: dict[str, Any], where: str) -> Path:
    """The folder a dataset yaml's splits are relative to: its ``path`` key (relative to the yaml) or the yaml's
    own folder. Shared by the detection and the classification dataset readers, so both resolve alike."""
    root = path.parent.resolve()
    if raw.get("path") is not None:
        root = _resolve(root, raw["path"]).resolve()
    if not root.is_dir():
        raise DataError(f"{where}: 'path' folder {root} does not exist")
    return root


def _parse_names(raw: Any, where: str) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, dict):
        try:
            keys = sorted(int(k) for k in raw)
        except (TypeError, ValueError):
            raise DataError(f"{where}: 'names' keys must be integer class ids, got {list(raw)[:5]}") from None
        if keys != list(range(len(keys))):
            raise DataError(f"{where}: 'names' ids must be 0..{len(keys) - 1} without gaps, got {keys[:10]}")
        by_int = {int(k): v for k, v in raw.items()}
        return [str(by_int[i]) for i in keys]
    if isinstance(raw, (list, tuple)):
        return [str(n) for n in raw]
    raise DataError(f"{where}: 'names' must be a list or a {{id: name}} mapping, got {type(raw).__name__}")


def _parse_split(name: str, raw: Any, root: Path, where: str) -> SplitSpec:
    if isinstance(raw, dict):
        unknown = set(raw) - {"images", "annotations", "labels"}
        if unknown:
            key = sorted(unknown)[0]
            raise DataError(f"{where}: unknown key {key!r} in split {name!r}; expected images, annotations or "
                            "labels." + suggest(key, ["images", "annotations", "labels"]))
        if "images" not in raw:
            raise DataError(f"{where}: split {name!r} needs an 'images' folder")
        images = (_resolve(root, raw["images"]),)
        if raw.get("annotations") is not None:
            if raw.get("labels") is not None:
                raise DataError(f"{where}: split {name!r} gives both 'annotations' (COCO) and 'labels' (YOLO)")
            return SplitSpec(name, "coco", images, annotations=_resolve(root, raw["annotations"]))
        labels = _resolve(root, raw["labels"]) if raw.get("labels") is not None else None
        return SplitSpec(name, "yolo", images, labels=labels)
    if isinstance(raw, (str, Path)):
        return SplitSpec(name, "yolo", (_resolve(root, raw),))
    if isinstance(raw, (list, tuple)) and raw and all(isinstance(r, (str, Path)) for r in raw):
        return SplitSpec(name, "yolo", tuple(_resolve(root, r) for r in raw))
    raise DataError(f"{where}: split {name!r} must be an image folder, a list of them, or "
                    "{images: ..., annotations: ...}")


def load_data_config(data: str | Path | DataConfig) -> DataConfig:
    """Read a dataset yaml (or a folder holding ``data.yaml``), or ``"shapes"`` for the embedded set."""
    if isinstance(data, DataConfig):
        return data
    if str(data) == "shapes":
        return load_data_config(default_shapes_root() / "data.yaml")
    path = Path(str(data)).expanduser()
    if path.is_dir():
        cands = [path / "data.yaml", path / "data.yml"]
        found = [c for c in cands if c.is_file()]
        if not found:
            raise DataError(f"{path}: a dataset folder must contain data.yaml")
        path = found[0]
    if not path.is_file():
        hint = " Did you mean: shapes?" if "shape" in str(data).lower() else ""
        raise DataError(f"dataset {str(data)!r} not found: give a dataset yaml or 'shapes'.{hint}")
    where = path.name
    raw = read_yaml(path, where)
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected a mapping with path, train, val, names")
    root = dataset_root(path, raw, where)
    splits = {}
    for s in SPLITS:
        if raw.get(s) is None:
            raise DataError(f"{where}: missing '{s}' split")
        splits[s] = _parse_split(s, raw[s], root, where)
    names = _parse_names(raw.get("names"), where)
    nc = raw.get("nc")
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or nc < 1):
        raise DataError(f"{where}: 'nc' must be a positive integer, got {nc!r}")
    if names is None and raw.get("nc") is not None:
        names = [f"class{i}" for i in range(int(raw["nc"]))]
    if names is not None and raw.get("nc") is not None and int(raw["nc"]) != len(names):
        raise DataError(f"{where}: 'nc' is {raw['nc']} but 'names' has {len(names)} entries")

    category_ids = None
    coco_splits = [sp for sp in splits.values() if sp.format == "coco"]
    if coco_splits:
        cats = read_categories(coco_splits[0].annotations, root)
        category_ids = [c for c, _ in cats]
        if names is None:
            names = [n for _, n in cats]
        elif len(names) != len(cats):
            raise DataError(f"{where}: 'names' has {len(names)} entries but "
                            f"{coco_splits[0].annotations.name} has {len(cats)} categories")
    if names is None:
        raise DataError(f"{where}: missing 'names' (a list of class names, or {{id: name}})")
    if not names:
        raise DataError(f"{where}: 'names' is empty; a dataset needs at least one class")
    return DataConfig(root=root, names=names, splits=splits, file=path.resolve(), category_ids=category_ids)
