"""``cache=True`` (the default on the embedded sets) is a fast path: the same items as decoding every time."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from gradpath.commands.train import train_settings
from gradpath.cli import build_parser
from gradpath.data import build_dataset, collate_fn
from gradpath.tasks.segment.task import SegmentTask

# every augmentation that reads or pastes other images, so a cached array changed in place would show
HEAVY = {"mosaic": 1.0, "mixup": 0.5, "copy_paste": 0.5, "fliplr": 0.5, "degrees": 10.0}


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def test_cached_items_equal_decoded_items_and_the_cache_stays_intact(tiny_shapes):
    plain = build_dataset(tiny_shapes / "data.yaml", "train", imgsz=64, augment=True, hyp=HEAVY)
    cached = build_dataset(tiny_shapes / "data.yaml", "train", imgsz=64, augment=True, hyp=HEAVY, cache=True)
    assert set(cached._cache) == set(range(len(cached)))  # decoded up front
    for epoch in range(3):
        for i in range(len(plain)):
            random.seed(100 * epoch + i)
            a = plain[i]
            random.seed(100 * epoch + i)
            assert _equal(a, cached[i]), (epoch, i)
    assert all(_equal(cached.load(i), plain.load(i)) for i in range(len(plain)))  # no augmentation wrote into it


def test_loader_workers_read_the_cache_not_the_files(tmp_path, tiny_shapes):
    import shutil
    root = tmp_path / "copy"
    shutil.copytree(tiny_shapes, root)
    ds = build_dataset(root / "data.yaml", "val", imgsz=64, augment=False, cache=True)
    expected = [ds[i] for i in range(len(ds))]
    shutil.rmtree(root / "images")  # a worker that decoded on its own would now fail
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=1, collate_fn=collate_fn)
    got = list(loader)
    assert len(got) == len(expected)
    assert all(torch.equal(b["img"][0], e["img"]) for b, e in zip(got, expected))


def test_the_task_caches_generated_sets_by_default_and_the_option_wins(tiny_shapes, coco_factory):
    assert SegmentTask(data=tiny_shapes / "data.yaml").cache is True  # a generated set, wherever it lives
    assert SegmentTask(data=tiny_shapes / "data.yaml", cache=False).cache is False
    user = coco_factory(images=[("a.png", 32, 32)], anns=[], categories=[{"id": 1, "name": "x"}])
    assert SegmentTask(data=user).cache is False
    assert SegmentTask(data=user, cache=True).options["cache"] is True


@pytest.mark.parametrize("flag, expected", [([], None), (["--cache"], True), (["--no-cache"], False)])
def test_train_cache_flag(flag, expected):
    args = build_parser().parse_args(["train", "--model", "yolor-elan", *flag])
    assert train_settings(args)["task_options"].get("cache") == expected
