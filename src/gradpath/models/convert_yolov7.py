"""YOLOv7 segmentation weights (``yolov7-seg``, the ``u7`` branch's ``seg/``) → gradpath's ``yolor-elan``.

``yolor-elan`` (ELAN-{2,1}s, :mod:`gradpath.models.yolor`) is the layout of ``seg/models/segment/yolov7-seg.yaml``
(docs/reconstructions.md §4). u7's ``seg/`` is YOLOv5's code base, so the state-dict keys are
``model.<layer index>.<module path>`` again; gradpath names the same modules by role (``body.elan3.blocks.1.0``,
``body.down_n4.cv_b2``, ``head.ia.0``). Every tensor is placed by the explicit table :data:`CONV_LAYERS` (one
Conv+BN unit per yaml layer) plus the SPPCSPC and the head; the converter refuses a state dict with a key it does
not place, a key it needs and does not find, or a shape that differs, with a one-line
:class:`~gradpath.errors.GradpathError` naming the key. yolov7-seg has no width or depth multiple, so only the class
count is read from the shapes; any other size is an error.

Their layer indices (the yaml; MP = 2×2 max-pool, Concat and nn.Upsample hold no tensors)::

    0-3      Conv stem (3×3 s1, s2, s1, s2)
    4-11     ELAN, s = 2: 4 = 1×1 on the input (our ``cross``, p), 5 = 1×1 from -2 (``entry``, q), 6-9 four
             chained 3×3 (``blocks.0.0/0.1/1.0/1.1``), 10 Concat [9, 7, 5, 4], 11 1×1 (``transition``)
    12-16    MP-down: 12 MP, 13 1×1 (``cv_a``), 14 1×1 from -3 (``cv_b1``), 15 3×3 s2 (``cv_b2``), 16 Concat [15, 13]
    17-24 ELAN (elan3)   25-29 MP-down (down4)   30-37 ELAN (elan4)   38-42 MP-down (down5)   43-50 ELAN (elan5)
    51       SPPCSPC (cv1-cv7)
    52 1×1 (``lat4.reduce``), 53 Upsample, 54 1×1 on layer 37 (``lat4.lateral``), 55 Concat [54, 53]
    56-63    ELAN, s = 1 (elan_t4): blocks.0.0 … blocks.3.0, Concat [61, 60, 59, 58, 57, 56]
    64-67    lat3 (64 reduce, 66 lateral on layer 24)    68-75 ELAN (elan_t3)
    76-80    MP-down (down_n4), 80 Concat [79, 77, 63]  81-88 ELAN (elan_n4)
    89-93    MP-down (down_n5), 93 Concat [92, 90, 51]  94-101 ELAN (elan_n5)
    102-104  3×3 convs on 75, 88, 101 (``head3``-``head5``)
    105      ISegment: m.<i> (1×1 output convs), ia.<i>, im.<i> (implicit layers), proto.cv1-cv3, anchors

Every concatenation is in our order already (ELAN: [last block … first block, q, p]; MP-down: [conv branch, pool
branch]; lateral: [1×1 of the backbone map, upsampled]; bottom-up: [MP-down, top-down map]), so no tensor is
permuted. Two tensors change on the way, both keeping what YOLOv7 computes:

- **Anchors.** Their ``anchors`` buffer is in grid cells (divided by the stride when the model is built); ours
  are in pixels: multiplied by 8/16/32. ``stride``, ``grid`` and ``anchor_grid`` are attributes there, not saved;
  our ``head.stride`` buffer is the architecture's.
- **ImplicitM.** u7's ``ISegment`` creates ``im.<i>`` (ImplicitM of na·(5 + nc) channels) but its forward never
  applies it (the output conv reads ``ia.<i>(x)`` only); gradpath's applies it to the box/objectness/class
  outputs (the deviation noted in :mod:`gradpath.models.detect`). Their ``im`` tensors (never trained: no
  gradient reaches them) are checked for shape and replaced by ones, with which our forward is theirs exactly.

The rest is the same network: Conv+BN (eps 1e-3)+SiLU units, SPPCSPC with 5/9/13 pools on a hidden width equal to
its output, the Proto (3×3, nearest ×2, 3×3, 1×1) on the raw P3, ImplicitA added before each output conv, and the
decoding ``xy = (2σ − 0.5 + grid)·stride``, ``wh = (2σ)²·anchor_px`` — so the converted model's eval output
``(pred, proto)`` equals YOLOv7's ``(pred, (raw levels, proto))`` with the raw levels left out.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from gradpath.errors import GradpathError
from gradpath.models.convert_common import (
    Entry,
    anchors_to_pixels,
    conv_unit,
    identity,
    place_tensors,
    read_checkpoint,
    state_dict_of,
)
from gradpath.models.registry import create_model

__all__ = ["CONV_LAYERS", "convert_yolov7_seg", "load_yolov7_seg", "read_yolov7_checkpoint", "yolov7_name_map",
           "yolov7_seg_config", "yolov7_state_dict"]

NAME = "yolor-elan"
STRIDES = (8.0, 16.0, 32.0)
HEAD = 105
NA = 3  # anchors per level
NM, NPR = 32, 256  # yolov7-seg.yaml's ISegment args (mask coefficients, Proto width)
SPPCSPC_LAYER = 51

#: where u7's own pickled checkpoints can be read, for the export command in the error
EXPORT_WHERE = "in the seg/ folder of a clone of YOLOv7's u7 branch (where its models.yolo imports)"


def _elan(first: int, dst: str, convs_per_block: int) -> dict[int, str]:
    """The eight layers of one yaml ELAN from ``first``: p (1×1 on the input), q (1×1 from -2), four chained
    3×3 in blocks of ``convs_per_block``, the Concat (no tensors), the 1×1 transition."""
    out = {first: f"{dst}.cross", first + 1: f"{dst}.entry"}
    for j in range(4):
        out[first + 2 + j] = f"{dst}.blocks.{j // convs_per_block}.{j % convs_per_block}"
    out[first + 7] = f"{dst}.transition"
    return out


def _mp_down(first: int, dst: str) -> dict[int, str]:
    """The five layers of one yaml MP-down from ``first``: MP (no tensors), 1×1 after the pool, 1×1 from -3,
    3×3 s2, the Concat (no tensors)."""
    return {first + 1: f"{dst}.cv_a", first + 2: f"{dst}.cv_b1", first + 3: f"{dst}.cv_b2"}


#: yolov7-seg.yaml layer index → gradpath module path, for every layer that is one Conv unit (``conv``/``bn``)
CONV_LAYERS: dict[int, str] = {
    0: "body.stem.0", 1: "body.stem.1", 2: "body.stem.2", 3: "body.stem.3",
    **_elan(4, "body.elan2", 2), **_mp_down(12, "body.down3"),
    **_elan(17, "body.elan3", 2), **_mp_down(25, "body.down4"),
    **_elan(30, "body.elan4", 2), **_mp_down(38, "body.down5"),
    **_elan(43, "body.elan5", 2),
    52: "body.lat4.reduce", 54: "body.lat4.lateral", **_elan(56, "body.elan_t4", 1),
    64: "body.lat3.reduce", 66: "body.lat3.lateral", **_elan(68, "body.elan_t3", 1),
    **_mp_down(76, "body.down_n4"), **_elan(81, "body.elan_n4", 1),
    **_mp_down(89, "body.down_n5"), **_elan(94, "body.elan_n5", 1),
    102: "body.head3", 103: "body.head4", 104: "body.head5",
}

#: our tensors that no YOLOv7 tensor fills: they are the architecture's own values
DERIVED = ("head.stride",)


def _not_applied(t: torch.Tensor) -> torch.Tensor:
    """u7's ImplicitM is never applied; ours is, and 1 is the value that keeps their output."""
    return torch.ones_like(t)


# ----------------------------------------------------------------------------------------------------- reading
def read_yolov7_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The YOLOv7 state dict in a file (``torch.load(weights_only=True)``): a plain state dict, or a dict whose
    ``'ema'`` / ``'model'`` holds one. A file that pickles YOLOv7's model objects (its own ``.pt`` files) is refused
    with a one-line error that gives the command exporting a plain state dict."""
    return read_checkpoint(path, "YOLOv7", EXPORT_WHERE)


def yolov7_state_dict(obj: Any, what: str = "YOLOv7 checkpoint") -> dict[str, torch.Tensor]:
    """A ``dict[str, Tensor]`` in YOLOv7's naming (``model.<i>.…``) from the forms people have
    (:func:`~gradpath.models.convert_common.state_dict_of`): the state dict itself, a checkpoint dict whose
    ``'ema'`` or ``'model'`` is one, with an optional DDP ``module.`` prefix or without the ``model.`` prefix."""
    return state_dict_of(obj, what, "YOLOv7")


# ------------------------------------------------------------------------------------------------ the name map
def yolov7_name_map() -> list[Entry]:
    """(their key, our key, transform) for every tensor of a yolov7-seg state dict: :data:`CONV_LAYERS`, the
    SPPCSPC (layer 51) and the ISegment head (layer 105)."""
    entries: list[Entry] = []
    for i, dst in CONV_LAYERS.items():
        entries += conv_unit(f"model.{i}", dst)
    for cv in range(1, 8):
        entries += conv_unit(f"model.{SPPCSPC_LAYER}.cv{cv}", f"body.sppcspc.cv{cv}")
    src = f"model.{HEAD}"
    entries.append((f"{src}.anchors", "head.anchors", anchors_to_pixels(STRIDES)))
    for lvl in range(len(STRIDES)):
        entries += [(f"{src}.m.{lvl}.weight", f"head.m.{lvl}.weight", identity),
                    (f"{src}.m.{lvl}.bias", f"head.m.{lvl}.bias", identity),
                    (f"{src}.ia.{lvl}.implicit", f"head.ia.{lvl}.implicit", identity),
                    (f"{src}.im.{lvl}.implicit", f"head.im.{lvl}.implicit", _not_applied)]
    for cv in ("cv1", "cv2", "cv3"):
        entries += conv_unit(f"{src}.proto.{cv}", f"head.proto.{cv}")
    return entries


# ----------------------------------------------------------------------------------------------- the config
def _need(sd: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in sd:
        raise GradpathError(f"YOLOv7 state dict: missing key {key}")
    t = sd[key]
    if not isinstance(t, torch.Tensor):
        raise GradpathError(f"YOLOv7 state dict: {key} is a {type(t).__name__}, not a tensor")
    return t


def _fixed(sd: Mapping[str, torch.Tensor], key: str, dim: int, want: int, what: str) -> None:
    t = _need(sd, key)
    got = t.shape[dim] if t.dim() > dim else None
    if got != want:
        raise GradpathError(f"YOLOv7 state dict: {key} has {got} {what}, yolov7-seg.yaml has {want}; only the class "
                            "count may differ from the published network")


def yolov7_seg_config(sd: Mapping[str, torch.Tensor]) -> tuple[str, dict[str, Any]]:
    """(registered name, config fields) of the gradpath model for a yolov7-seg state dict (in their naming, as
    :func:`yolov7_state_dict` returns it): ``yolor-elan`` with the class count of the head's output channels.
    The other sizes yolov7-seg.yaml fixes (input channels, stem width, mask coefficients, Proto width, anchors)
    are checked here; every other tensor's shape when it is placed."""
    if not any(k.startswith(f"model.{HEAD}.") for k in sd):
        if "model.24.proto.cv1.conv.weight" in sd:
            raise GradpathError(f"not a yolov7-seg state dict: no layer {HEAD} (its ISegment head), and layer 24 is a "
                                "YOLOv5 Segment head: convert it with --from yolov5 (convert_yolov5_seg)")
        raise GradpathError(f"not a yolov7-seg state dict (YOLOv7 u7 branch): no layer {HEAD} (its ISegment head)")
    if f"model.{HEAD}.proto.cv1.conv.weight" not in sd and f"model.{HEAD}.m.0.weight" in sd:
        raise GradpathError(f"model.{HEAD}.proto.cv1.conv.weight not found: this is a YOLOv7 detection state dict "
                            "(IDetect head); gradpath imports the segmentation model only (yolov7-seg)")
    _fixed(sd, "model.0.conv.weight", 1, 3, "input channels")
    _fixed(sd, "model.0.conv.weight", 0, 32, "output channels (yolov7-seg has no width multiple)")
    _fixed(sd, f"model.{HEAD}.proto.cv3.conv.weight", 0, NM, "mask coefficients")
    _fixed(sd, f"model.{HEAD}.proto.cv1.conv.weight", 0, NPR, "Proto channels")
    anchors = _need(sd, f"model.{HEAD}.anchors")
    if tuple(anchors.shape) != (3, NA, 2):
        raise GradpathError(f"YOLOv7 state dict: model.{HEAD}.anchors has shape {tuple(anchors.shape)}; yolov7-seg "
                            f"has 3 levels of {NA} anchors (3, {NA}, 2)")
    no, rem = divmod(_need(sd, f"model.{HEAD}.m.0.weight").shape[0], NA)
    nc = no - 5 - NM
    if rem or nc < 1:
        raise GradpathError(f"YOLOv7 state dict: model.{HEAD}.m.0.weight has {NA * no + rem} output channels, not "
                            f"{NA} anchors × (5 + classes + {NM} mask coefficients)")
    return NAME, {"num_classes": nc}


# ------------------------------------------------------------------------------------------------- converting
@torch.no_grad()
def convert_yolov7_seg(state: Any, what: str = "YOLOv7 state dict") -> nn.Module:
    """A gradpath ``yolor-elan`` holding the weights of a YOLOv7 (u7 branch) ``yolov7-seg`` state dict; the class
    count is read from the tensor shapes, every other size must be yolov7-seg.yaml's.

    ``state``: anything :func:`yolov7_state_dict` accepts. Every source tensor must be placed and every tensor
    of the gradpath model filled (``head.stride`` is the architecture's; ``head.im`` is set to ones, see the
    module docstring); otherwise a one-line :class:`GradpathError` names the key. The model is returned as
    ``create_model`` returns it (training mode): call ``.eval()`` for inference.
    """
    sd = yolov7_state_dict(state, what)
    name, cfg = yolov7_seg_config(sd)
    model = create_model(name, **cfg)
    return place_tensors(model, name, cfg, sd, yolov7_name_map(), what=what, source="YOLOv7",
                         layout="YOLOv7 u7", derived=DERIVED,
                         shape_note="; yolov7-seg.yaml has no width or depth multiple: only the class count may "
                                    "differ")


def load_yolov7_seg(path: str | os.PathLike) -> nn.Module:
    """:func:`convert_yolov7_seg` of the file at ``path`` (read with :func:`read_yolov7_checkpoint`)."""
    return convert_yolov7_seg(read_yolov7_checkpoint(path), str(path))
