"""What every label format is parsed into, and how problems found while parsing are reported.

Parsers never raise on the first problem themselves: they report to a ``Problems`` collector. At load time the
collector is strict (the first error becomes a one-line ``DataError`` naming the file); ``check-data`` runs the
same parsers with a lenient collector so it can list every problem at once.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradpath.errors import DataError

IMG_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class ImageRecord:
    """One image and its training instances (crowd and degenerate ones already removed).

    ``boxes`` are xyxy; in original pixels, or in [0, 1] when ``normalized`` (YOLO txt, whose image size is only
    known once the image is read). ``segments[k]`` is ``None`` (box only: the mask is the box), a list of flat
    polygons ``[x0, y0, x1, y1, ...]`` in the same units as ``boxes``, or a pycocotools RLE dict.
    """

    file: Path
    image_id: int
    height: int | None = None
    width: int | None = None
    cls: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    segments: list[Any] = field(default_factory=list)
    normalized: bool = False


@dataclass
class Problem:
    level: str  # "error" | "warning"
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


class Problems:
    """Collects data problems; ``strict`` turns the first error into a ``DataError``."""

    def __init__(self, strict: bool = True, root: Path | None = None) -> None:
        self.strict = strict
        self.root = root
        self.items: list[Problem] = []
        # recoverable problems counted across files (e.g. "degenerate_polygons"), for summaries and check-data
        self.counts: Counter[str] = Counter()

    def name(self, path: Path | str) -> str:
        """A short, unambiguous file name for messages: relative to the dataset root when inside it."""
        p = Path(path)
        if self.root is not None:
            try:
                return str(p.resolve().relative_to(self.root.resolve()))
            except ValueError:
                pass
        return str(p)

    def error(self, path: Path | str, message: str) -> None:
        prob = Problem("error", self.name(path), message)
        if self.strict:
            raise DataError(str(prob))
        self.items.append(prob)

    def warn(self, path: Path | str, message: str) -> None:
        self.items.append(Problem("warning", self.name(path), message))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.level == "warning"]
