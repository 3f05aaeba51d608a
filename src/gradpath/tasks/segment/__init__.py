"""Detection + instance segmentation with the YOLOv5-seg head (paper Sec. 5: every detector is evaluated this way).

``SegmentTask`` (task.py, registered as ``segment``), ``SegmentLoss`` (loss.py), ``non_max_suppression`` /
``process_masks`` (postprocess.py), ``evaluate_coco`` (metrics.py, pycocotools COCOeval), ``validate``
(validate.py), ``predict`` (predict.py), figures (plots.py) and the task's command-line part (cli.py). Models have a
``head`` with ``nm`` mask prototypes; their eval forward returns ``(pred, proto)``.
"""
from gradpath.tasks.segment.loss import SegmentLoss
from gradpath.tasks.segment.metrics import evaluate_coco
from gradpath.tasks.segment.postprocess import (
    crop_mask,
    masks_to_original,
    non_max_suppression,
    process_masks,
    scale_boxes,
)
from gradpath.tasks.segment.task import SegmentTask
from gradpath.tasks.segment.validate import validate

__all__ = [
    "SegmentLoss", "SegmentTask", "evaluate_coco", "crop_mask", "masks_to_original", "non_max_suppression",
    "process_masks", "scale_boxes", "validate",
]
