"""The image-classification task as the engine sees it (``gradpath.engine.task.Task``): the paper's Table 2 setting.

Data: ImageNet-layout folders, a yaml naming them, or the embedded ``shapes-cls`` (``gradpath.data.classify``).
Loss: cross-entropy with label smoothing. Metrics: top-1, top-5, per-class accuracy and a confusion matrix.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from gradpath.data.classify import CLASSIFY_HYP, ClassifyDataset, classify_collate, load_classify_data
from gradpath.data.shapes_cls import META_FILE as SHAPES_CLS_META
from gradpath.checks import check_imgsz
from gradpath.errors import GradpathError, suggest
from gradpath.tasks.classify import cli as classify_cli
from gradpath.tasks.classify.metrics import classification_metrics
from gradpath.tasks.classify.plots import plot_confusion_matrix
from gradpath.tasks.registry import register_task

__all__ = ["ClassifyTask", "classify_hyp"]

#: the task's own hyper-parameters besides the data transforms' (``CLASSIFY_HYP``)
LOSS_HYP = {"label_smoothing": 0.1}


def classify_hyp(hyp: Mapping[str, Any] | None) -> dict[str, float]:
    """Defaults updated by ``hyp``; an unknown key or a non-number is a one-line error naming it."""
    known = {**CLASSIFY_HYP, **LOSS_HYP}
    out = dict(known)
    for k, v in (hyp or {}).items():
        if k not in known:
            raise GradpathError(f"unknown classify hyp {k!r}.{suggest(k, known)} Known: {', '.join(known)}")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise GradpathError(f"classify hyp {k!r} must be a number, got {v!r}")
        out[k] = float(v)
    if not 0 <= out["label_smoothing"] < 1:
        raise GradpathError(f"classify hyp label_smoothing must be in [0, 1), got {out['label_smoothing']}")
    return out


@register_task
class ClassifyTask:
    """Image classification with any registered classifier (``darknet53``, ``csp-resnet50``, the tiny references...).

    Options (stored in checkpoints; ``--resume`` rebuilds the task from them): ``data``, ``imgsz`` (None: the
    model's own size), ``hyp`` (transform and loss overrides: ``classify_hyp``), ``cache`` (decode every image once and
    keep it in RAM; None: on for a generated ``shapes-cls`` set, wherever it lives, off otherwise).
    """

    name = "classify"
    default_data = "shapes-cls"
    commands = classify_cli  # its part of `gradpath val|predict|export`
    loss_names = ("ce",)
    metric_names = ("top1", "top5")
    collate_fn = staticmethod(classify_collate)
    #: TrainConfig values that suit classification better than the detection defaults (options still win):
    #: mean cross-entropy per batch, so no accumulation to a nominal batch (nbs 0), and ImageNet-style SGD with a
    #: cosine decay (timm's default for classifiers).
    train_defaults = {"nbs": 0, "lr0": 0.05, "momentum": 0.9, "weight_decay": 5e-5, "warmup_epochs": 1.0,
                      "schedule": "cosine"}

    def __init__(self, data: Any = "shapes-cls", imgsz: int | None = None, hyp: Mapping[str, Any] | None = None,
                 cache: bool | None = None, progress: bool = True) -> None:
        self.data_cfg = load_classify_data(data)
        self.data = str(data) if str(data) == "shapes-cls" else str(Path(str(data)).resolve())
        self.imgsz = int(imgsz) if imgsz is not None else None
        if self.imgsz is not None:
            check_imgsz(self.imgsz)
        self.hyp_overrides = dict(hyp or {})
        self.hyp = classify_hyp(self.hyp_overrides)
        self.cache = (self.data_cfg.root / SHAPES_CLS_META).is_file() if cache is None else bool(cache)
        self.progress = progress
        self.last_metrics: dict[str, Any] | None = None

    # ----------------------------------------------------------------- what the run stores
    @property
    def options(self) -> dict[str, Any]:
        return {"data": self.data, "imgsz": self.imgsz, "hyp": dict(self.hyp_overrides), "cache": self.cache}

    @property
    def names(self) -> list[str]:
        return list(self.data_cfg.names)

    def model_overrides(self) -> dict[str, Any]:
        return {"num_classes": len(self.names)}

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"names": self.names, "imgsz": self.imgsz}

    def summary(self, metrics: Mapping[str, float]) -> str:
        return f"top1={metrics.get('top1', 0.0):.4f} top5={metrics.get('top5', 0.0):.4f}"

    # ----------------------------------------------------------------- the engine's hooks
    def setup(self, model: nn.Module, device: torch.device) -> None:
        name = getattr(model, "gradpath_name", type(model).__name__)
        if hasattr(getattr(model, "head", None), "nm"):
            raise GradpathError(f"model {name!r} is a detector: --task classify needs a classifier "
                                "(e.g. csp-darknet53; `gradpath models` lists them)")
        if int(getattr(model, "num_classes", -1)) != len(self.names):
            raise GradpathError(f"model {name!r} has {getattr(model, 'num_classes', '?')} classes but the dataset has "
                                f"{len(self.names)}; build it with num_classes={len(self.names)}")
        if self.imgsz is None:
            self.imgsz = int(getattr(model, "default_imgsz", 224))
            check_imgsz(self.imgsz)

    def datasets(self) -> tuple[Dataset, Dataset | None]:
        if self.imgsz is None:
            raise GradpathError("the classify task needs an input size: pass imgsz or call setup(model) first")
        train = ClassifyDataset(self.data_cfg, "train", self.imgsz, augment=True, hyp=self.hyp, cache=self.cache)
        val = ClassifyDataset(self.data_cfg, "val", self.imgsz, augment=False, hyp=self.hyp, cache=self.cache)
        return train, val

    def preprocess(self, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device):
        img, labels = batch
        nb = device.type == "cuda"
        return img.to(device, non_blocking=nb).float().div_(255.0), labels.to(device, non_blocking=nb)

    def loss(self, model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        img, labels = batch
        loss = F.cross_entropy(model(img), labels, label_smoothing=self.hyp["label_smoothing"])
        return loss, loss.detach().reshape(1)

    @torch.no_grad()
    def predict_logits(self, model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and labels of every sample of ``loader`` (all ranks' shards, in sampler order, under DDP)."""
        logits, labels = [], []
        for img, y in tqdm(loader, desc="val", disable=not self.progress, leave=False):
            logits.append(model(img.to(device).float().div_(255.0)).float().cpu())
            labels.append(y)
        logits_t, labels_t = torch.cat(logits), torch.cat(labels)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # Each rank scored its DistributedSampler shard (interleaved, the last one padded with repeats):
            # gather (sample index, logits, label) from every rank and keep each sample once, in index order.
            idx = torch.tensor(list(iter(loader.sampler)), dtype=torch.int64)
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, (idx, logits_t, labels_t))
            all_idx = torch.cat([g[0] for g in gathered])
            order = torch.argsort(all_idx, stable=True)
            first = torch.ones(len(order), dtype=torch.bool)
            first[1:] = all_idx[order][1:] != all_idx[order][:-1]
            keep = order[first]
            logits_t = torch.cat([g[1] for g in gathered])[keep]
            labels_t = torch.cat([g[2] for g in gathered])[keep]
        return logits_t, labels_t

    def evaluate(self, model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
        logits, labels = self.predict_logits(model, loader, device)
        m = classification_metrics(logits, labels, self.names)
        self.last_metrics = m
        return {"top1": float(m["top1"]), "top5": float(m["top5"])}

    def fitness(self, metrics: Mapping[str, float]) -> float:
        return float(metrics.get("top1", 0.0))

    def plot(self, model: nn.Module, loader: DataLoader, device: torch.device, save_dir: Path) -> None:
        """``confusion_matrix.png`` of the last evaluation."""
        if self.last_metrics is not None:
            plot_confusion_matrix(self.last_metrics["confusion"], self.names, Path(save_dir) / "confusion_matrix.png")
