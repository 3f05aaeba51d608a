"""Small hand-made datasets written into tmp_path (no binaries committed)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_png(path: Path, h: int, w: int, value: int = 60) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((h, w, 3), value, np.uint8)
    arr[::2, ::2, 0] = 200  # some texture so the image is not constant
    Image.fromarray(arr).save(path)


@pytest.fixture
def png():
    """``png(path, h, w)`` writes a small textured RGB PNG."""
    return write_png


@pytest.fixture
def coco_factory(tmp_path):
    """Write a COCO split: ``make(images=[(file, h, w)], anns=[...], categories=[...], names=None)`` -> yaml."""

    def make(images, anns, categories, names=None, write_images=True, mutate=None):
        root = tmp_path / "coco"
        imgs = []
        for k, (fname, h, w) in enumerate(images):
            if write_images:
                write_png(root / "images" / "train" / fname, h, w)
            imgs.append({"id": k + 1, "file_name": fname, "height": h, "width": w})
        data = {"images": imgs, "annotations": anns, "categories": categories}
        if mutate:
            mutate(data)
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / "instances_train.json").write_text(json.dumps(data))
        split = "{images: images/train, annotations: annotations/instances_train.json}"
        text = f"path: .\ntrain: {split}\nval: {split}\n"
        if names is not None:
            text += f"names: {json.dumps(names)}\n"
        (root / "data.yaml").write_text(text)
        return root / "data.yaml"

    return make


@pytest.fixture
def yolo_factory(tmp_path):
    """Write a YOLO split: ``make({"a.png": (h, w, "label text" | None)}, names)`` -> yaml."""

    def make(items, names, labels_dir=None):
        root = tmp_path / "yolo"
        for fname, (h, w, text) in items.items():
            write_png(root / "images" / "train" / fname, h, w)
            if text is not None:
                lbl = (root / labels_dir / "train" if labels_dir else root / "labels" / "train") / fname
                lbl = lbl.with_suffix(".txt")
                lbl.parent.mkdir(parents=True, exist_ok=True)
                lbl.write_text(text)
        if labels_dir:
            split = f"{{images: images/train, labels: {labels_dir}/train}}"
        else:
            split = "images/train"
        (root / "data.yaml").write_text(f"path: .\ntrain: {split}\nval: {split}\nnames: {json.dumps(names)}\n")
        return root / "data.yaml"

    return make
