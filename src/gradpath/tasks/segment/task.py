"""The instance-segmentation task as the engine sees it (``gradpath.engine.task.Task``).

It owns the data (``gradpath.data``: COCO json or YOLO txt, the embedded ``shapes``), the YOLOv5-seg loss, COCO
box/mask AP, its figures, and the metadata its checkpoints carry (class names, input size), so every zoo detector
is trained and scored the way the paper's Tables 3 and 5-8 are (Sec. 5.1).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from gradpath.data import build_dataset, collate_fn, load_data_config
from gradpath.data.shapes import META_FILE as SHAPES_META
from gradpath.checks import check_imgsz
from gradpath.errors import GradpathError
from gradpath.hyp import segment_hyp
from gradpath.tasks.registry import register_task
from gradpath.tasks.segment import cli as segment_cli
from gradpath.tasks.segment.loss import SegmentLoss
from gradpath.tasks.segment.plots import plot_pr_curves, plot_val_predictions
from gradpath.tasks.segment.validate import validate

__all__ = ["SegmentTask", "segment_fitness"]

METRIC_NAMES = ("box_map50", "box_map", "box_map75", "mask_map50", "mask_map", "mask_map75")


def segment_fitness(metrics: Mapping[str, float]) -> float:
    """0.1·AP50 + 0.9·AP over box and mask (YOLOv5-seg's weighting): favours well-localised boxes and masks."""
    return sum(0.1 * metrics.get(f"{k}_map50", 0.0) + 0.9 * metrics.get(f"{k}_map", 0.0) for k in ("box", "mask"))


def data_ref(data: Any) -> str:
    """What to store so a resumed run finds the same data: the embedded name, or an absolute path."""
    s = str(getattr(data, "file", None) or data)
    p = Path(s)
    return str(p.resolve()) if p.exists() else s


@register_task
class SegmentTask:
    """Detection + instance segmentation with a YOLO-family detector and its YOLOv5-seg head.

    Options (stored in checkpoints; ``--resume`` rebuilds the task from them): ``data`` (``shapes`` or a dataset
    yaml), ``imgsz`` (None: the model's own size), ``hyp`` (augmentation/loss overrides of the defaults),
    ``cache`` (decode every image once and keep it in RAM; None: on for a generated ``shapes`` set, off otherwise).
    """

    name = "segment"
    default_data = "shapes"
    commands = segment_cli  # its part of `gradpath val|predict|export`
    loss_names = ("box", "seg", "obj", "cls")
    metric_names = METRIC_NAMES

    def __init__(self, data: Any = "shapes", imgsz: int | None = None, hyp: Mapping[str, Any] | None = None,
                 progress: bool = True, conf_thres: float = 0.001, iou_thres: float = 0.6, max_det: int = 300,
                 cache: bool | None = None) -> None:
        self.data_cfg = load_data_config(data)
        self.data = data_ref(data)
        self.cache = (self.data_cfg.root / SHAPES_META).is_file() if cache is None else bool(cache)
        self.imgsz = int(imgsz) if imgsz is not None else None
        if self.imgsz is not None:
            check_imgsz(self.imgsz)
        self.hyp = dict(hyp or {})  # the overrides, as given (stored in checkpoints)
        self.hyp_config = segment_hyp(self.hyp)  # typed and checked: a typo fails here, before any run folder
        self.conf_thres, self.iou_thres, self.max_det = conf_thres, iou_thres, max_det
        self.progress = progress
        self.last_metrics: dict[str, Any] | None = None  # the full validate() dict (per class, PR curves)
        self.loss_fn: SegmentLoss | None = None

    # ----------------------------------------------------------------- what the run stores
    @property
    def options(self) -> dict[str, Any]:
        return {"data": self.data, "imgsz": self.imgsz, "hyp": dict(self.hyp), "cache": self.cache}

    @property
    def names(self) -> list[str]:
        return list(self.data_cfg.names)

    @property
    def nc(self) -> int:
        return int(self.data_cfg.nc)

    def model_overrides(self) -> dict[str, Any]:
        """The model is built for the dataset's classes."""
        return {"num_classes": self.nc}

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"names": self.names, "imgsz": self.imgsz}

    def summary(self, metrics: Mapping[str, float]) -> str:
        return f"box mAP50={metrics.get('box_map50', 0.0):.4f} mask mAP50={metrics.get('mask_map50', 0.0):.4f}"

    # ----------------------------------------------------------------- the engine's hooks
    collate_fn = staticmethod(collate_fn)

    def setup(self, model: nn.Module, device: torch.device) -> None:
        head = getattr(model, "head", None)
        if head is None or not hasattr(head, "nm"):
            raise GradpathError(f"model {getattr(model, 'gradpath_name', type(model).__name__)!r} has no "
                                "segmentation head: --task segment needs a YOLO-family detector")
        if int(model.num_classes) != self.nc:
            raise GradpathError(f"model has {model.num_classes} classes but the dataset has {self.nc} "
                                f"({', '.join(self.names)}); build it with num_classes={self.nc}")
        if self.imgsz is None:
            self.imgsz = int(getattr(model, "default_imgsz", 640))
            check_imgsz(self.imgsz)
        self.loss_fn = SegmentLoss(model, self.hyp_config)

    def datasets(self) -> tuple[Dataset, Dataset | None]:
        if self.imgsz is None:
            raise GradpathError("the segment task needs an input size: pass imgsz or call setup(model) first")
        train = build_dataset(self.data_cfg, split="train", imgsz=self.imgsz, augment=True, hyp=self.hyp_config,
                              cache=self.cache)
        val = None
        if "val" in self.data_cfg.splits:
            val = build_dataset(self.data_cfg, split="val", imgsz=self.imgsz, augment=False, cache=self.cache)
        return train, val

    def preprocess(self, batch: dict, device: torch.device) -> dict:
        nb = device.type == "cuda"
        return {
            "img": batch["img"].to(device, non_blocking=nb).float().div_(255.0),
            "targets": batch["targets"].to(device, non_blocking=nb),
            "masks": batch["masks"].to(device, non_blocking=nb),
        }

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        feats, proto = model(batch["img"])
        loss, items = self.loss_fn((feats, proto), batch["targets"], batch["masks"])
        # A batch without instances has no mask-loss terms, leaving the prototype branch out of the graph; DDP
        # would then wait forever for its gradients. A zero-weighted term keeps every parameter in the graph.
        return loss + 0.0 * proto.sum(), items

    def evaluate(self, model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
        m = validate(model, loader, loader.dataset, device, conf_thres=self.conf_thres, iou_thres=self.iou_thres,
                     max_det=self.max_det, progress=self.progress)
        self.last_metrics = m
        return {f"{k}_{s}": float(m[k][s]) for k in ("box", "mask") for s in ("map50", "map", "map75")}

    def fitness(self, metrics: Mapping[str, float]) -> float:
        return segment_fitness(metrics)

    def plot(self, model: nn.Module, loader: DataLoader, device: torch.device, save_dir: Path) -> None:
        """``val_predictions.png`` (a glance at quality) and ``pr_curve.png`` from the last evaluation."""
        plot_val_predictions(model, loader, device, Path(save_dir) / "val_predictions.png", self.names,
                             iou_thres=self.iou_thres)
        if self.last_metrics and self.last_metrics.get("pr_curve"):
            plot_pr_curves(self.last_metrics["pr_curve"], Path(save_dir) / "pr_curve.png")
