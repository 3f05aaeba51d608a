"""Datasets for detection + instance segmentation: ultralytics-style yaml over COCO json or YOLO txt labels,
the embedded ``shapes`` set, augmentation, and ``check-data`` (contract B of issue 5)."""
from __future__ import annotations

from gradpath.data.augment import DEFAULT_HYP
from gradpath.data.config import DataConfig, SplitSpec, load_data_config
from gradpath.data.dataset import DetectionDataset, build_dataset, collate_fn
from gradpath.data.shapes import default_shapes_root, generate_shapes

__all__ = ["DEFAULT_HYP", "DataConfig", "SplitSpec", "load_data_config", "DetectionDataset", "build_dataset",
           "collate_fn", "generate_shapes", "default_shapes_root", "check_dataset"]


def check_dataset(data, **kwargs):  # noqa: ANN001, ANN201 - thin lazy re-export
    from gradpath.data.check import check_dataset as _check

    return _check(data, **kwargs)
