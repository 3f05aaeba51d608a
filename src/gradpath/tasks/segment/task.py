"""The instance-segmentation task as the engine sees it (``gradpath.engine.task.Task``).

Glue only: datasets and batches come from ``gradpath.data`` (contract B), the loss and COCO evaluation from this
package (contract C), so every zoo detector is trained and scored the way the paper's Tables 6-8 are (Sec. 5.1:
YOLOv5-seg recipe, COCO box/mask AP).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

__all__ = ["SegmentTask", "segment_fitness"]

METRIC_NAMES = ("box_map50", "box_map", "box_map75", "mask_map50", "mask_map", "mask_map75")


def segment_fitness(metrics: dict[str, float]) -> float:
    """0.1·AP50 + 0.9·AP over box and mask (YOLOv5-seg's weighting): favours well-localised boxes and masks."""
    return sum(0.1 * metrics.get(f"{k}_map50", 0.0) + 0.9 * metrics.get(f"{k}_map", 0.0) for k in ("box", "mask"))


class SegmentTask:
    name = "segment"
    loss_names = ("box", "seg", "obj", "cls")
    metric_names = METRIC_NAMES

    def __init__(self, data: Any, imgsz: int, hyp: dict[str, Any] | None = None, conf_thres: float = 0.001,
                 iou_thres: float = 0.6, max_det: int = 300, progress: bool = True) -> None:
        from gradpath.data import load_data_config

        self.data_cfg = load_data_config(data)
        self.imgsz = int(imgsz)
        self.hyp = dict(hyp or {})
        self.conf_thres, self.iou_thres, self.max_det = conf_thres, iou_thres, max_det
        self.progress = progress
        self.last_metrics: dict[str, Any] | None = None  # the full validate() dict (per-class etc.)
        self.loss_fn = None

    @property
    def names(self) -> list[str]:
        return list(self.data_cfg.names)

    @property
    def nc(self) -> int:
        return int(self.data_cfg.nc)

    @staticmethod
    def collate_fn(items: list) -> dict:
        from gradpath.data import collate_fn

        return collate_fn(items)

    def datasets(self) -> tuple[Dataset, Dataset | None]:
        from gradpath.data import build_dataset

        train = build_dataset(self.data_cfg, split="train", imgsz=self.imgsz, augment=True, hyp=self.hyp or None)
        val = None
        if "val" in self.data_cfg.splits:
            val = build_dataset(self.data_cfg, split="val", imgsz=self.imgsz, augment=False)
        return train, val

    def setup(self, model: nn.Module, device: torch.device) -> None:
        from gradpath.errors import GradpathError
        from gradpath.tasks.segment import SegmentLoss

        head = getattr(model, "head", None)
        if head is None or not hasattr(head, "nm"):
            raise GradpathError(f"model {getattr(model, 'gradpath_name', type(model).__name__)!r} has no "
                                "segmentation head: --task segment needs a YOLO-family detector")
        if int(model.num_classes) != self.nc:
            raise GradpathError(f"model has {model.num_classes} classes but the dataset has {self.nc} "
                                f"({', '.join(self.names)}); build it with num_classes={self.nc}")
        self.loss_fn = SegmentLoss(model, self.hyp or None)

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
        from gradpath.tasks.segment import validate

        m = validate(model, loader, loader.dataset, device, conf_thres=self.conf_thres, iou_thres=self.iou_thres,
                     max_det=self.max_det, progress=self.progress)
        self.last_metrics = m
        return {f"{k}_{s}": float(m[k][s]) for k in ("box", "mask") for s in ("map50", "map", "map75")}

    def fitness(self, metrics: dict[str, float]) -> float:
        return segment_fitness(metrics)

    @torch.no_grad()
    def plot_predictions(self, model: nn.Module, loader: DataLoader, device: torch.device, save_dir: Path,
                         n: int = 16, conf: float = 0.25) -> Path | None:
        """A grid of val images with predicted masks and boxes (``val_predictions.png``), a glance at quality,
        and the last evaluation's precision-recall curves (``pr_curve.png``)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from gradpath.tasks.segment import non_max_suppression, process_masks

        model.eval()
        nm = int(model.head.nm)
        imgs, dets_all, masks_all = [], [], []
        for batch in loader:
            img = batch["img"].to(device).float() / 255.0
            pred, proto = model(img)
            for k, det in enumerate(non_max_suppression(pred, conf, self.iou_thres, max_det=50, nm=nm)):
                imgs.append(batch["img"][k].permute(1, 2, 0).numpy())
                det = det.cpu()
                masks = process_masks(proto[k].cpu(), det[:, 6:], det[:, :4], img.shape[2:]) if len(det) else None
                dets_all.append(det)
                masks_all.append(masks)
            if len(imgs) >= n:
                break
        if not imgs:
            return None
        imgs, dets_all, masks_all = imgs[:n], dets_all[:n], masks_all[:n]
        cols = min(4, len(imgs))
        rows = (len(imgs) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
        cmap = plt.get_cmap("tab10")
        for ax in axes.flat:
            ax.axis("off")
        for ax, im, det, masks in zip(axes.flat, imgs, dets_all, masks_all):
            shown = im.astype("float32") / 255.0
            for j in range(len(det)):
                colour = torch.tensor(cmap(int(det[j, 5]) % 10)[:3])
                m = masks[j].numpy()
                shown[m] = 0.5 * shown[m] + 0.5 * colour.numpy()
            ax.imshow(shown)
            for j in range(len(det)):
                x1, y1, x2, y2 = det[j, :4].tolist()
                c = int(det[j, 5])
                ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1.2, color=cmap(c % 10)))
                name = self.names[c] if c < len(self.names) else str(c)
                ax.text(x1, y1, f"{name} {det[j, 4]:.2f}", fontsize=6, color="white",
                        bbox=dict(facecolor=cmap(c % 10), pad=0.5, lw=0))
        fig.tight_layout()
        out = Path(save_dir) / "val_predictions.png"
        fig.savefig(out, dpi=100)
        plt.close(fig)
        if self.last_metrics and self.last_metrics.get("pr_curve"):
            from gradpath.engine.plots import plot_pr_curves

            plot_pr_curves(self.last_metrics["pr_curve"], Path(save_dir) / "pr_curve.png")
        return out


def next_run_dir(project: str | Path, task: str, name: str, exist_ok: bool = False) -> Path:
    """``project/task/name``, or ``name2``, ``name3`` … when it exists (nothing is overwritten unless asked).

    Only computes the path; the trainer's rank 0 creates it, so DDP ranks all pick the same folder.
    """
    base = Path(project) / task
    path = base / name
    if exist_ok or not path.exists():
        return path
    k = 2
    while (base / f"{name}{k}").exists():
        k += 1
    return base / f"{name}{k}"


def train_segment(model: str, data: Any = "shapes", *, model_overrides: dict[str, Any] | None = None,
                  hyp: dict[str, Any] | None = None, exist_ok: bool = False, log=None, progress: bool = True,
                  **train_args: Any):
    """Train a registered detector on a dataset: build the model for the dataset's classes, run the engine.

    ``train_args`` are ``TrainConfig`` fields (epochs, batch, imgsz, optimizer, lr0, device, project, name …).
    Returns the ``Trainer`` after ``fit()`` (``trainer.metrics``, ``trainer.save_dir``, ``task.last_metrics``).
    """
    from gradpath.engine import TrainConfig, Trainer
    from gradpath.engine.checkpoint import model_config_dict
    from gradpath.engine.utils import check_imgsz, seed_everything
    from gradpath.models.registry import create_model, get_entry

    get_entry(model)  # an unknown name fails here, with suggestions, before any data is touched
    cfg = TrainConfig(**train_args)
    cfg.validate()
    check_imgsz(cfg.imgsz)
    task = SegmentTask(data, cfg.imgsz, hyp=hyp, progress=progress)
    overrides = dict(model_overrides or {})
    overrides["num_classes"] = task.nc
    seed_everything(cfg.seed)  # the initial weights are part of the run: same seed, same network
    net = create_model(model, **overrides)
    save_dir = next_run_dir(cfg.project, task.name, cfg.name, exist_ok)
    run_info = {"task": task.name, "model": model, "model_overrides": overrides,
                "model_config": model_config_dict(net), "data": _data_ref(data), "names": task.names,
                "imgsz": cfg.imgsz, "hyp": dict(hyp or {})}
    trainer = Trainer(net, task, cfg, save_dir, run_info=run_info, log=log, progress=progress)
    trainer.fit()
    return trainer


def resume_segment(checkpoint: str | Path, *, expect_model: str | None = None, log=None, progress: bool = True,
                   **changes: Any):
    """Continue an interrupted run from its ``last.pt`` exactly where it stopped (same folder, same args).

    ``changes`` may only touch where/how it runs (``device``, ``workers``), never what is trained.
    """
    from gradpath.engine import TrainConfig, Trainer
    from gradpath.engine.checkpoint import load_checkpoint
    from gradpath.errors import GradpathError
    from gradpath.models.registry import create_model

    path = Path(checkpoint)
    ck = load_checkpoint(path)
    info, targs = ck.get("run_info"), ck.get("train_args")
    if not isinstance(info, dict) or not isinstance(targs, dict) or "optimizer" not in ck:
        raise GradpathError(f"{path} is not a training checkpoint with optimizer state (it cannot be resumed)")
    if info.get("task") != "segment":
        raise GradpathError(f"{path} is a checkpoint of a {info.get('task')!r} run, not a segment run")
    if expect_model is not None and info.get("model") != expect_model:
        raise GradpathError(f"{path} is a checkpoint of model {info.get('model')!r}, not {expect_model!r}")
    epochs = int(targs.get("epochs", 0))
    if int(ck.get("epoch", -1)) + 1 >= epochs:
        raise GradpathError(f"{path}: this run already finished all {epochs} epochs; nothing to resume "
                            "(start a new run, e.g. with another --name)")
    bad = set(changes) - {"device", "workers"}
    if bad:
        raise GradpathError(f"--resume continues the stored run; it cannot change {', '.join(sorted(bad))}")
    targs = {**targs, **{k: v for k, v in changes.items() if v is not None}}
    cfg = TrainConfig(**targs)
    task = SegmentTask(info["data"], cfg.imgsz, hyp=info.get("hyp") or None, progress=progress)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in (info.get("model_overrides") or {}).items()}
    net = create_model(info["model"], **overrides)
    save_dir = path.parent.parent if path.parent.name == "weights" else path.parent
    trainer = Trainer(net, task, cfg, save_dir, run_info=info, resume=ck, log=log, progress=progress)
    trainer.fit()
    return trainer


def _data_ref(data: Any) -> str:
    """What to store so a resumed run finds the same data: the embedded name, or an absolute path."""
    s = str(getattr(data, "file", None) or data)
    p = Path(s)
    return str(p.resolve()) if p.exists() else s
