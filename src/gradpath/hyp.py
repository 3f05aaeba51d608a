"""``SegmentHyp``: the one typed set of augmentation and loss hyper-parameters of the segmentation task.

Why one frozen dataclass: the dataset and the loss used to keep a default dict each and silently skip the other's
keys, so a typo (``--hyp mosiac=0.5``) trained without a word. Every key is now declared once, with its type and
range; ``segment_hyp`` rejects unknown keys (suggesting near names) and wrong types in one line naming the key.

Presets are YOLOv5 v7.0's ``hyp.scratch-low`` and ``hyp.scratch-high`` (the paper, Sec. 5.1, names YOLOv5 r6.2;
segmentation first shipped in v7.0, whose recipe this code follows). ``scratch-high`` is the paper's
high-augmentation recipe: mixup 0.1, copy-paste 0.1, scale 0.9, obj 0.7, cls 0.3 and lrf 0.1. The optimizer keys
of those files (lr0, lrf, momentum, weight decay, warm-up) belong to the trainer's ``TrainConfig``, not here:
a preset carries them apart, in ``HypRecipe.train``.

``from_yaml`` reads a hyp file in the ultralytics shape. Its keys for transforms gradpath does not implement
(shear, perspective, focal-loss gamma) are accepted only at their no-op value 0, and ``iou_t``, which YOLOv5's
own loss never reads, is accepted and ignored.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from gradpath.checks import read_yaml
from gradpath.errors import GradpathError, suggest

__all__ = ["SegmentHyp", "HypRecipe", "PRESETS", "TRAIN_KEYS", "DEFAULT_HYP", "segment_hyp", "from_yaml",
           "load_recipe"]

#: keys of an ultralytics hyp file that configure the optimizer (gradpath's ``TrainConfig`` fields)
TRAIN_KEYS = ("lr0", "lrf", "momentum", "weight_decay", "warmup_epochs", "warmup_momentum", "warmup_bias_lr")

#: ultralytics keys for things gradpath does not implement: accepted only at this value (``None``: any, ignored)
NOOP_KEYS: dict[str, float | None] = {"shear": 0.0, "perspective": 0.0, "fl_gamma": 0.0, "iou_t": None}


def _unit(x: float) -> bool:
    return 0.0 <= x <= 1.0


@dataclass(frozen=True)
class SegmentHyp:
    """Augmentation and loss hyper-parameters; defaults are YOLOv5 v7.0 ``hyp.scratch-low``."""

    # -- augmentation (training only) --
    mosaic: float = 1.0       # probability of a 4-image mosaic
    mixup: float = 0.0        # probability of blending in a second mosaic (beta(32, 32) weight)
    copy_paste: float = 0.0   # probability of pasting each instance's mirror image (masks only)
    degrees: float = 0.0      # rotation range (+/- deg)
    translate: float = 0.1    # translation (+/- fraction of the output size)
    scale: float = 0.5        # scale gain range (1 +/- scale)
    fliplr: float = 0.5       # probability of a horizontal flip
    flipud: float = 0.0       # probability of a vertical flip
    hsv_h: float = 0.015      # hue gain (fraction)
    hsv_s: float = 0.7        # saturation gain (fraction)
    hsv_v: float = 0.4        # value gain (fraction)
    # -- loss (unscaled YOLOv5 gains; the loss rescales them by levels, classes and image size) --
    box: float = 0.05
    cls: float = 0.5
    obj: float = 1.0
    cls_pw: float = 1.0       # class BCE positive weight
    obj_pw: float = 1.0       # objectness BCE positive weight
    anchor_t: float = 4.0     # anchor-to-target size ratio limit for assignment
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise GradpathError(f"hyp {f.name!r} must be a number, got {v!r}")
            if not math.isfinite(v):
                raise GradpathError(f"hyp {f.name!r} must be finite, got {v!r}")
            object.__setattr__(self, f.name, float(v))
        rules = {
            "mosaic": _unit, "mixup": _unit, "copy_paste": _unit, "fliplr": _unit, "flipud": _unit,
            "translate": lambda x: 0.0 <= x <= 0.5, "scale": lambda x: 0.0 <= x < 1.0,
            "label_smoothing": lambda x: 0.0 <= x < 1.0, "anchor_t": lambda x: x > 1.0,
            "cls_pw": lambda x: x > 0.0, "obj_pw": lambda x: x > 0.0,
        }
        ranges = {"translate": "in [0, 0.5]", "scale": "in [0, 1)", "label_smoothing": "in [0, 1)",
                  "anchor_t": "> 1", "cls_pw": "> 0", "obj_pw": "> 0"}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            ok = rules.get(f.name, lambda x: x >= 0.0)(v)
            if not ok:
                want = ranges.get(f.name, "a probability in [0, 1]" if rules.get(f.name) is _unit else ">= 0")
                raise GradpathError(f"hyp {f.name!r} must be {want}, got {v:g}")

    def to_dict(self) -> dict[str, float]:
        """Plain dict (what a checkpoint or ``args.yaml`` stores)."""
        return dataclasses.asdict(self)


DEFAULT_HYP = SegmentHyp()
_KEYS = tuple(f.name for f in dataclasses.fields(SegmentHyp))


@dataclass(frozen=True)
class HypRecipe:
    """A named recipe: the task's ``segment`` part and the optimizer's ``train`` part (``TrainConfig`` fields)."""

    name: str
    segment: SegmentHyp
    train: Mapping[str, float] = field(default_factory=dict)


_SCRATCH_TRAIN = {"lr0": 0.01, "lrf": 0.01, "momentum": 0.937, "weight_decay": 0.0005, "warmup_epochs": 3.0,
                  "warmup_momentum": 0.8, "warmup_bias_lr": 0.1}
PRESETS: dict[str, HypRecipe] = {
    "scratch-low": HypRecipe("scratch-low", SegmentHyp(), dict(_SCRATCH_TRAIN)),
    "scratch-high": HypRecipe("scratch-high",
                              SegmentHyp(mixup=0.1, copy_paste=0.1, scale=0.9, obj=0.7, cls=0.3),
                              {**_SCRATCH_TRAIN, "lrf": 0.1}),
}


def _check_key(key: Any) -> None:
    if not isinstance(key, str):
        raise GradpathError(f"hyp keys must be names, got {key!r}")
    if key in TRAIN_KEYS:
        raise GradpathError(f"hyp {key!r} is an optimizer setting, not an augmentation/loss one: "
                            f"pass it as --{key.replace('_', '-')}")
    if key not in _KEYS:
        raise GradpathError(f"unknown hyp {key!r}.{suggest(key, _KEYS)}")


def segment_hyp(overrides: Mapping[str, Any] | SegmentHyp | None = None, preset: str | None = None) -> SegmentHyp:
    """The preset's (default: ``scratch-low``) hyper-parameters with ``overrides`` applied; an unknown key, a
    wrong type or a value out of range is a one-line ``GradpathError`` naming the key."""
    if isinstance(overrides, SegmentHyp) and preset is None:
        return overrides
    if preset is None:
        base = DEFAULT_HYP
    elif preset in PRESETS:
        base = PRESETS[preset].segment
    else:
        raise GradpathError(f"unknown hyp preset {preset!r}; available: {', '.join(PRESETS)}."
                            + suggest(str(preset), PRESETS))
    if isinstance(overrides, SegmentHyp):
        overrides = overrides.to_dict()
    if overrides is None:
        return base
    if not isinstance(overrides, Mapping):
        raise GradpathError(f"hyp must be a mapping of key: value, got {type(overrides).__name__}")
    for key in overrides:
        _check_key(key)
    return dataclasses.replace(base, **dict(overrides))


def from_yaml(path: str | os.PathLike) -> HypRecipe:
    """A hyp file in the ultralytics shape (``hyp.scratch-high.yaml``) as a ``HypRecipe``: augmentation/loss keys
    become ``segment`` (unset ones keep the ``scratch-low`` defaults), optimizer keys become ``train``."""
    p = Path(path)
    raw = read_yaml(p, what="hyp file")
    if not isinstance(raw, dict):
        raise GradpathError(f"{p}: expected a mapping of hyp: value")
    seg: dict[str, Any] = {}
    train: dict[str, float] = {}
    for key, value in raw.items():
        if key in NOOP_KEYS:
            want = NOOP_KEYS[key]
            if want is not None and value != want:
                raise GradpathError(f"{p}: {key!r} = {value!r} is not implemented by gradpath (only {want:g})")
            continue
        if key in TRAIN_KEYS:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise GradpathError(f"{p}: {key!r} must be a number, got {value!r}")
            train[key] = float(value)
            continue
        if not isinstance(key, str) or key not in _KEYS:
            raise GradpathError(f"{p}: unknown hyp {key!r}." + suggest(str(key), (*_KEYS, *TRAIN_KEYS)))
        seg[key] = value
    try:
        hyp = dataclasses.replace(DEFAULT_HYP, **seg)
    except GradpathError as e:
        raise GradpathError(f"{p}: {e}") from None
    return HypRecipe(p.name, hyp, train)


def load_recipe(spec: str | os.PathLike) -> HypRecipe:
    """A preset name (``scratch-low``, ``scratch-high``) or the path of an ultralytics-shaped hyp yaml."""
    s = str(spec)
    if s in PRESETS:
        return PRESETS[s]
    if s.endswith((".yaml", ".yml")) or Path(s).is_file():
        return from_yaml(s)
    raise GradpathError(f"hyp {s!r} is neither a preset ({', '.join(PRESETS)}) nor a yaml file."
                        + suggest(s, PRESETS))
