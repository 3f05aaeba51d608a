"""Detection + instance segmentation with the YOLOv5-seg head (paper §5: every detector is evaluated this way).

``SegmentLoss`` (loss.py), ``non_max_suppression`` / ``process_masks`` (postprocess.py), ``evaluate_coco``
(metrics.py, pycocotools COCOeval), ``validate`` (validate.py), ``predict`` (predict.py), ``export_model``
(export.py). Models follow contract A (``model.head`` a Segment head; eval forward returns ``(pred, proto)``).
"""
from gradpath.tasks.segment.loss import DEFAULT_HYP, SegmentLoss
from gradpath.tasks.segment.metrics import evaluate_coco
from gradpath.tasks.segment.postprocess import (
    crop_mask,
    masks_to_original,
    non_max_suppression,
    process_masks,
    scale_boxes,
)
from gradpath.tasks.segment.validate import validate

__all__ = [
    "DEFAULT_HYP", "SegmentLoss", "evaluate_coco", "crop_mask", "masks_to_original", "non_max_suppression",
    "process_masks", "scale_boxes", "validate",
]
