"""What the weight importers (:mod:`~gradpath.models.convert_yolov5`, :mod:`~gradpath.models.convert_yolov7`)
share: reading a checkpoint file safely, the forms of state dict people save, and placing every tensor by an
explicit name map.

Both code bases build their network from a yaml as one ``nn.Sequential`` called ``model``, so their state-dict
keys are ``model.<layer index>.<module path>``, a ``Conv`` unit is ``conv``/``bn``, and their own training
checkpoints pickle the model object under ``'model'``/``'ema'``. gradpath reads files with
``torch.load(weights_only=True)`` only; such a file is refused with the one-line command that exports its plain
state dict where the source code base imports.
"""
from __future__ import annotations

import os
import pickle  # only for its exception class: files are read with weights_only=True
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from gradpath.errors import GradpathError

__all__ = ["CONV_UNIT", "EXPORT_ONE_LINER", "Entry", "Transform", "anchors_to_pixels", "conv_unit",
           "identity", "place_tensors", "read_checkpoint", "state_dict_of"]

CONV_UNIT = ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked")

#: what to run where the source code base imports, to turn its pickled training checkpoint into a plain state dict
EXPORT_ONE_LINER = ('python -c "import torch; c = torch.load(\'{src}\', map_location=\'cpu\', weights_only=False); '
                    'torch.save((c.get(\'ema\') or c[\'model\']).float().state_dict(), \'{dst}\')"')

Transform = Callable[[torch.Tensor], torch.Tensor]

#: (their key, our key, transform) — one tensor of a name map
Entry = tuple[str, str, Transform]


def identity(t: torch.Tensor) -> torch.Tensor:
    return t


def anchors_to_pixels(strides: Sequence[float]) -> Transform:
    """Their ``anchors`` buffer (grid cells: divided by the level stride when their model is built) → ours
    (input pixels), level by level."""
    def to_pixels(t: torch.Tensor) -> torch.Tensor:
        return t * torch.tensor(tuple(strides), dtype=t.dtype).view(-1, 1, 1)
    return to_pixels


def conv_unit(src: str, dst: str, transform: Transform = identity) -> list[Entry]:
    """One Conv+BN unit: conv weight (transformed), then the BN tensors."""
    return [(f"{src}.{s}", f"{dst}.{s}", transform if s == "conv.weight" else identity) for s in CONV_UNIT]


# ----------------------------------------------------------------------------------------------------- reading
def read_checkpoint(path: str | os.PathLike, source: str, export_where: str) -> dict[str, torch.Tensor]:
    """The state dict in a file of code base ``source`` (``torch.load(weights_only=True)``), as
    :func:`state_dict_of` returns it. A file that pickles the source's model objects is refused with a one-line
    error that gives the command exporting a plain state dict, to be run ``export_where`` (a phrase: "where
    YOLOv5 v7.0 is importable (…)")."""
    path = Path(path)
    if not path.is_file():
        raise GradpathError(f"{source} checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        m = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if m is None:
            raise GradpathError(f"{source} checkpoint {path} cannot be read (not a torch file, or a damaged one)") \
                from None
        dst = path.with_name(f"{path.stem}-state_dict.pt")
        raise GradpathError(
            f"{path} holds pickled Python objects ({m.group(1)}), which gradpath does not unpickle "
            f"(torch.load weights_only=True); export a plain state dict {export_where}: "
            f"{EXPORT_ONE_LINER.format(src=path, dst=dst)}") from None
    except (RuntimeError, OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise GradpathError(f"{source} checkpoint {path} cannot be read ({first})") from None
    return state_dict_of(obj, str(path), source)


def state_dict_of(obj: Any, what: str, source: str) -> dict[str, torch.Tensor]:
    """A ``dict[str, Tensor]`` in the source's naming (``model.<i>.…``) from the forms people have: the state dict
    itself, a checkpoint dict whose ``'ema'`` (preferred, as their own loaders do) or ``'model'`` is one (or a
    module, when the caller unpickled it), with an optional DDP ``module.`` prefix or without the ``model.``
    prefix (``model.model.state_dict()``)."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise GradpathError(f"{what} holds a {type(obj).__name__}, not a {source} state dict")
    if obj and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in ("ema", "model") if obj.get(k) is not None), None)
        if inner is None:
            raise GradpathError(f"{what} is a dict without tensors under 'ema' or 'model' (keys: "
                                f"{', '.join(map(str, list(obj)[:8]))}): not a {source} checkpoint")
        return state_dict_of(inner, what, source)
    if not obj:
        raise GradpathError(f"{what} is empty: no tensors")
    out: dict[str, torch.Tensor] = {}
    for k, v in obj.items():
        key = str(k).removeprefix("module.")
        if key[:1].isdigit():
            key = f"model.{key}"
        out[key] = v
    return out


# ------------------------------------------------------------------------------------------------- placing
@torch.no_grad()
def place_tensors(model: nn.Module, name: str, cfg: Mapping[str, Any], sd: Mapping[str, torch.Tensor],
                  entries: Sequence[Entry], *, what: str, source: str, layout: str,
                  derived: Sequence[str] = (), shape_note: str = "") -> nn.Module:
    """Load ``sd`` (their naming) into ``model`` (built as ``name`` with ``cfg``) through ``entries``.

    Every key of ``sd`` must be the source of an entry, every entry's source must be in ``sd`` with the shape of
    its destination (after the transform), and every tensor of ``model`` must be filled (``derived``: those that
    are the architecture's own values). Otherwise a one-line :class:`GradpathError` names the key; ``layout``
    names the source layout in it ("YOLOv5 v7.0"), ``shape_note`` is appended to a shape mismatch."""
    own = model.state_dict()
    sources = {src for src, _, _ in entries}
    unexpected = [k for k in sd if k not in sources]
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        hint = " — was the model fused (model.fuse()) before saving? Save the unfused one" \
            if any(k.endswith(".conv.bias") for k in unexpected) else ""
        raise GradpathError(f"{what}: unexpected key {unexpected[0]}{more}: not a {layout} segmentation layout"
                            f"{hint}")
    new: dict[str, torch.Tensor] = {}
    for src, dst, transform in entries:
        if src not in sd:
            raise GradpathError(f"{what}: missing key {src} (for {dst})")
        if dst not in own:
            raise GradpathError(f"{what}: {src} has no place in {name} {dict(cfg)} ({dst} does not exist); the "
                                f"layout differs from {layout}'s")
        t = sd[src]
        if not isinstance(t, torch.Tensor):
            raise GradpathError(f"{what}: {src} is a {type(t).__name__}, not a tensor")
        t = transform(t)
        if tuple(t.shape) != tuple(own[dst].shape):
            raise GradpathError(f"{what}: {src} has shape {tuple(sd[src].shape)}, {dst} of {name} needs "
                                f"{tuple(own[dst].shape)}{shape_note}")
        new[dst] = t.to(own[dst].dtype)
    for k in derived:
        new[k] = own[k]
    unfilled = [k for k in own if k not in new]
    if unfilled:
        raise GradpathError(f"{what}: no {source} tensor fills {unfilled[0]} of {name} {dict(cfg)}")
    model.load_state_dict(new)
    return model
