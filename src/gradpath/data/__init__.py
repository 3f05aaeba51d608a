"""Datasets for detection + instance segmentation: ultralytics-style yaml over COCO json or YOLO txt labels,
the embedded ``shapes`` set, image reading and letterboxing, augmentation, and ``check-data``."""
from __future__ import annotations

from gradpath.data.check import check_dataset
from gradpath.data.config import DataConfig, SplitSpec, load_data_config
from gradpath.data.dataset import DetectionDataset, build_dataset, collate_fn
from gradpath.data.images import letterbox, read_image
from gradpath.data.shapes import default_shapes_root, generate_shapes
from gradpath.hyp import DEFAULT_HYP, SegmentHyp, segment_hyp

__all__ = ["DEFAULT_HYP", "SegmentHyp", "segment_hyp", "DataConfig", "SplitSpec", "load_data_config",
           "DetectionDataset", "build_dataset", "collate_fn", "generate_shapes", "default_shapes_root",
           "check_dataset", "read_image", "letterbox"]

