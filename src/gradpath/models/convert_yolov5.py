"""YOLOv5 v7.0 segmentation weights (``yolov5{n,s,m,l,x}-seg``) → gradpath's ``yolov5l-seg`` / ``yolov5x-seg``.

YOLOv5 builds its network from ``models/segment/yolov5*-seg.yaml`` as one ``nn.Sequential`` called ``model``, so
its state-dict keys are ``model.<layer index>.<module path>``; gradpath names the same modules by role
(``body.stage3.1``, ``body.c3_p3``, ``head.proto``). Every tensor is placed by the explicit table
:data:`LAYER_MAP` below; the converter refuses a state dict with a key it does not place, a key it needs and does
not find, or a shape that differs, with a one-line :class:`~gradpath.errors.GradpathError` naming the key.

Their layer indices (v7.0 yaml; 11/15 are ``nn.Upsample`` and 12/16/19/22 ``Concat``, which hold no tensors)::

    0 Conv 6x6 s2 stem    1 Conv s2  2 C3(3)   3 Conv s2  4 C3(6)   5 Conv s2  6 C3(9)   7 Conv s2  8 C3(3)
    9 SPPF(k=5)           10 Conv 1x1  13 C3(3, no shortcut)  14 Conv 1x1  17 C3 (P3 out)
    18 Conv s2  20 C3 (P4 out)  21 Conv s2  23 C3 (P5 out)  24 Segment(m.0-2, anchors, proto)

Module paths inside a layer: ``Conv`` = ``conv``/``bn`` (ours: the same in ``ConvBNAct``); ``C3`` =
``cv1``/``cv2``/``cv3`` and bottlenecks ``m.<j>.cv1``/``m.<j>.cv2`` (ours: ``m.<j>.branch.0``/``branch.1``);
``SPPF`` = ``cv1``/``cv2``; ``Segment`` = ``m.<i>.weight/bias``, ``anchors``, ``proto.cv1..cv3``.

Two tensors change on the way, both exactly:
- **Anchors.** YOLOv5 divides its ``anchors`` buffer by the level stride when it builds the model, so the state
  dict holds them in grid cells; gradpath's ``head.anchors`` are in input pixels. They are multiplied by the
  strides (8, 16, 32). Their ``stride`` is a plain attribute, not in the state dict; our ``head.stride`` buffer
  is the architecture's (8, 16, 32).
- **Concat order of the top-down neck.** YOLOv5 concatenates [upsampled coarse map, backbone map] before layers
  13 and 17; gradpath's ``Lateral`` concatenates [backbone map, upsampled coarse map]. The input channels of
  ``cv1`` and ``cv2`` of those two C3 blocks are therefore swapped halves (``c3_t4``, ``c3_p3``). The bottom-up
  concatenations (19, 22: [downsampled, earlier map]) are in the same order in both.

The rest is the same network: Conv+BN(eps 1e-3)+SiLU units, C3 bottlenecks of expansion 1.0, SPPF with one 5×5
pool applied three times, the Proto (3×3, nearest ×2, 3×3, 1×1), and the head's decoding
``xy = (2σ − 0.5 + grid)·stride``, ``wh = (2σ)²·anchor_px``, sigmoid on objectness and classes, raw mask
coefficients — so the converted model's eval output ``(pred, proto)`` equals YOLOv5's ``(pred, proto, …)[:2]``.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from gradpath.errors import GradpathError
from gradpath.models.convert_common import (
    EXPORT_ONE_LINER,
    Transform,
    anchors_to_pixels,
    conv_unit,
    identity,
    place_tensors,
    read_checkpoint,
    state_dict_of,
)
from gradpath.models.registry import create_model
from gradpath.models.scaling import Scaler

__all__ = ["EXPORT_ONE_LINER", "LAYER_MAP", "convert_yolov5_seg", "load_yolov5_seg", "read_yolov5_checkpoint",
           "yolov5_name_map", "yolov5_seg_config", "yolov5_state_dict"]

#: YOLOv5-seg v7.0 layer index → (module kind, gradpath module path). Indices not listed hold no tensors.
LAYER_MAP: dict[int, tuple[str, str]] = {
    0: ("conv", "body.stem"),
    1: ("conv", "body.stage2.0"), 2: ("c3", "body.stage2.1"),
    3: ("conv", "body.stage3.0"), 4: ("c3", "body.stage3.1"),
    5: ("conv", "body.stage4.0"), 6: ("c3", "body.stage4.1"),
    7: ("conv", "body.stage5.0"), 8: ("c3", "body.stage5.1"), 9: ("sppf", "body.stage5.2"),
    10: ("conv", "body.lat4.reduce"), 13: ("c3", "body.c3_t4"),
    14: ("conv", "body.lat3.reduce"), 17: ("c3", "body.c3_p3"),
    18: ("conv", "body.down4"), 20: ("c3", "body.c3_p4"),
    21: ("conv", "body.down5"), 23: ("c3", "body.c3_p5"),
    24: ("segment", "head"),
}

#: C3 layers fed by [upsampled output of layer v, backbone map] in YOLOv5 and [backbone map, upsampled] in gradpath
SWAPPED_CONCAT: dict[int, int] = {13: 10, 17: 14}

#: the YOLOv5 yaml's repeat count of each C3 layer (before the depth multiple)
C3_REPEATS: dict[int, int] = {2: 3, 4: 6, 6: 9, 8: 3, 13: 3, 17: 3, 20: 3, 23: 3}

#: the yaml's (unscaled) output width of the layers the width is read from
LAYER_WIDTHS: dict[int, int] = {0: 64, 2: 128, 4: 256, 6: 512, 8: 1024}

#: the released scales (width_multiple, depth_multiple): n, s, m, l, x
STANDARD_WIDTHS = (0.25, 0.5, 0.75, 1.0, 1.25)
STANDARD_DEPTHS = (0.33, 0.67, 1.0, 1.33)
X_SCALE = (1.25, 1.33)  # registered as yolov5x-seg; every other scale is yolov5l-seg with width/depth set

STRIDES = (8.0, 16.0, 32.0)
HEAD = 24
#: where YOLOv5's own pickled checkpoints can be read, for the export command in the error
EXPORT_WHERE = ("where YOLOv5 v7.0 is importable (a clone of its repository, or `pip install yolov5` after "
                "`import yolov5.models.yolo`)")

_anchors_to_pixels = anchors_to_pixels(STRIDES)


def _swap_input_halves(first: int) -> Transform:
    """Their input channels [0, first) | [first, C) → ours [first, C) | [0, first)."""
    def swap(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t[:, first:], t[:, :first]], 1)
    return swap


# ----------------------------------------------------------------------------------------------------- reading
def read_yolov5_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The YOLOv5 state dict in a file (``torch.load(weights_only=True)``): a plain state dict, or a dict whose
    ``'ema'`` / ``'model'`` holds one. A file that pickles YOLOv5's model objects (its own ``.pt`` files) is refused
    with a one-line error that gives the command exporting a plain state dict."""
    return read_checkpoint(path, "YOLOv5", EXPORT_WHERE)


def yolov5_state_dict(obj: Any, what: str = "YOLOv5 checkpoint") -> dict[str, torch.Tensor]:
    """A ``dict[str, Tensor]`` in YOLOv5's naming (``model.<i>.…``) from the forms people have
    (:func:`~gradpath.models.convert_common.state_dict_of`): the state dict itself, a checkpoint dict whose
    ``'ema'`` or ``'model'`` is one, with an optional DDP ``module.`` prefix or without the ``model.`` prefix."""
    return state_dict_of(obj, what, "YOLOv5")


# ------------------------------------------------------------------------------------------------ the name map
def _repeats(sd: Mapping[str, torch.Tensor], layer: int) -> int:
    """Bottlenecks of a C3 layer present in the state dict (``model.<layer>.m.<j>.…``)."""
    js = {int(m.group(1)) for k in sd if (m := re.match(rf"model\.{layer}\.m\.(\d+)\.", k))}
    return max(js) + 1 if js else 0


def yolov5_name_map(sd: Mapping[str, torch.Tensor]) -> list[tuple[str, str, Transform]]:
    """(their key, our key, transform) for every tensor of a YOLOv5-seg v7.0 state dict; the number of
    bottlenecks per C3 is read from ``sd``, every other name comes from :data:`LAYER_MAP`."""
    entries: list[tuple[str, str, Transform]] = []
    for i, (kind, dst) in LAYER_MAP.items():
        src = f"model.{i}"
        if kind == "conv":
            entries += conv_unit(src, dst)
        elif kind == "c3":
            swap = identity
            if i in SWAPPED_CONCAT:
                up = sd.get(f"model.{SWAPPED_CONCAT[i]}.conv.weight")
                if up is not None:
                    swap = _swap_input_halves(up.shape[0])
            entries += conv_unit(f"{src}.cv1", f"{dst}.cv1", swap) + conv_unit(f"{src}.cv2", f"{dst}.cv2", swap)
            for j in range(_repeats(sd, i)):
                entries += conv_unit(f"{src}.m.{j}.cv1", f"{dst}.m.{j}.branch.0")
                entries += conv_unit(f"{src}.m.{j}.cv2", f"{dst}.m.{j}.branch.1")
            entries += conv_unit(f"{src}.cv3", f"{dst}.cv3")
        elif kind == "sppf":
            entries += conv_unit(f"{src}.cv1", f"{dst}.cv1") + conv_unit(f"{src}.cv2", f"{dst}.cv2")
        else:  # segment
            entries.append((f"{src}.anchors", f"{dst}.anchors", _anchors_to_pixels))
            for lvl in range(len(STRIDES)):
                entries += [(f"{src}.m.{lvl}.weight", f"{dst}.m.{lvl}.weight", identity),
                            (f"{src}.m.{lvl}.bias", f"{dst}.m.{lvl}.bias", identity)]
            for cv in ("cv1", "cv2", "cv3"):
                entries += conv_unit(f"{src}.proto.{cv}", f"{dst}.proto.{cv}")
    return entries


#: our tensors that no YOLOv5 tensor fills: they are the architecture's own values
DERIVED = ("head.stride",)


# ----------------------------------------------------------------------------------------------- the scale
def _need(sd: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in sd:
        if not any(k.startswith(f"model.{HEAD}.") for k in sd):
            raise GradpathError(f"not a YOLOv5 v7.0 segmentation state dict: no layer {HEAD} (its Segment head); "
                                f"missing key {key}")
        raise GradpathError(f"YOLOv5 state dict: missing key {key}")
    t = sd[key]
    if not isinstance(t, torch.Tensor):
        raise GradpathError(f"YOLOv5 state dict: {key} is a {type(t).__name__}, not a tensor")
    return t


def yolov5_seg_config(sd: Mapping[str, torch.Tensor]) -> tuple[str, dict[str, Any]]:
    """(registered name, config fields) of the gradpath model with the shapes of a YOLOv5-seg state dict (in
    their naming, as :func:`yolov5_state_dict` returns it): width from the stage widths, depth from the C3 repeat
    counts (the released multiples first), classes from the head's output channels."""
    if f"model.{HEAD}.proto.cv1.conv.weight" not in sd and f"model.{HEAD}.m.0.weight" in sd:
        raise GradpathError(f"model.{HEAD}.proto.cv1.conv.weight not found: this is a YOLOv5 detection state dict "
                            "(Detect head); gradpath has the segmentation models only (yolov5*-seg)")
    widths = {i: _need(sd, f"model.{i}.conv.weight" if i == 0 else f"model.{i}.cv3.conv.weight").shape[0]
              for i in LAYER_WIDTHS}
    width = next((w for w in (*STANDARD_WIDTHS, widths[8] / 1024)
                  if all(Scaler(w).c(c) == widths[i] for i, c in LAYER_WIDTHS.items())), None)
    if width is None:
        raise GradpathError("YOLOv5 state dict: the stage widths " + ", ".join(
            f"model.{i}={c}" for i, c in widths.items()) + " fit no width multiple")
    counts = {i: _repeats(sd, i) for i in C3_REPEATS}
    depth = next((d for d in (*STANDARD_DEPTHS, counts[6] / 9, counts[4] / 6, counts[2] / 3)
                  if d > 0 and all(Scaler(1.0, d).n(r) == counts[i] for i, r in C3_REPEATS.items())), None)
    if depth is None:
        raise GradpathError("YOLOv5 state dict: the C3 repeat counts " + ", ".join(
            f"model.{i}={n}" for i, n in counts.items()) + " fit no depth multiple")
    anchors = _need(sd, f"model.{HEAD}.anchors")
    if tuple(anchors.shape) != (3, 3, 2):
        raise GradpathError(f"YOLOv5 state dict: model.{HEAD}.anchors has shape {tuple(anchors.shape)}; gradpath's "
                            "yolov5-seg has 3 levels of 3 anchors (3, 3, 2)")
    nm = _need(sd, f"model.{HEAD}.proto.cv3.conv.weight").shape[0]
    npr_out = _need(sd, f"model.{HEAD}.proto.cv1.conv.weight").shape[0]
    npr = next((p for p in (256, round(npr_out / width)) if Scaler(width).c(p) == npr_out), npr_out)
    no, rem = divmod(_need(sd, f"model.{HEAD}.m.0.weight").shape[0], 3)
    nc = no - 5 - nm
    if rem or nc < 1:
        raise GradpathError(f"YOLOv5 state dict: model.{HEAD}.m.0.weight has {3 * no + rem} output channels, not "
                            f"3 anchors × (5 + classes + {nm} mask coefficients)")
    cfg = {"num_classes": nc, "width": width, "depth": depth, "nm": nm, "npr": npr,
           "in_chans": _need(sd, "model.0.conv.weight").shape[1]}
    if (width, depth) == X_SCALE:
        return "yolov5x-seg", cfg
    return "yolov5l-seg", cfg


# ------------------------------------------------------------------------------------------------- converting
@torch.no_grad()
def convert_yolov5_seg(state: Any, what: str = "YOLOv5 state dict") -> nn.Module:
    """A gradpath ``yolov5l-seg`` (``yolov5x-seg`` at x scale) holding the weights of a YOLOv5 v7.0 segmentation
    state dict; width, depth, classes, mask coefficients and input channels are read from the tensor shapes.

    ``state``: anything :func:`yolov5_state_dict` accepts. Every source tensor must be placed and every tensor
    of the gradpath model filled (``head.stride`` is the architecture's); otherwise a one-line
    :class:`GradpathError` names the key. The model is returned as ``create_model`` returns it (training
    mode): call ``.eval()`` for inference.
    """
    sd = yolov5_state_dict(state, what)
    name, cfg = yolov5_seg_config(sd)
    model = create_model(name, **cfg)
    return place_tensors(model, name, cfg, sd, yolov5_name_map(sd), what=what, source="YOLOv5",
                         layout="YOLOv5 v7.0", derived=DERIVED)


def load_yolov5_seg(path: str | os.PathLike) -> nn.Module:
    """:func:`convert_yolov5_seg` of the file at ``path`` (read with :func:`read_yolov5_checkpoint`)."""
    return convert_yolov5_seg(read_yolov5_checkpoint(path), str(path))
