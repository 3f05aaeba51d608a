"""The deploy form of a trained model, and its export to ONNX or TorchScript with an automatic parity check.

Deploy form = BN folded into the convolutions (``gradpath.nn.fuse_model``), eval mode, fixed batch 1: every zoo
model's forward is then tensor-only (a tensor or a tuple of tensors: a detector gives ``(pred, proto)``, a
classifier its logits), which is what ONNX and TorchScript need; tasks name the outputs.
The exported file is run once (onnxruntime, or the TorchScript interpreter) on a random image and compared with
the unfused PyTorch model: the export fails when any output differs by more than ``rtol · max(1, |ref|)``
(1e-3 relative for values above 1, 1e-3 absolute below — boxes are in pixels, scores in [0, 1]).
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradpath.errors import GradpathError
from gradpath.nn import fuse_model, to_channels_last

__all__ = ["deploy_model", "export_model", "parity", "FORMATS"]

FORMATS = ("onnx", "torchscript")


def parity(outputs: list[torch.Tensor], reference: list[torch.Tensor], rtol: float = 1e-3) -> dict[str, float]:
    """Largest absolute and relative difference; ``ok`` when every element is within ``rtol · max(1, |ref|)``."""
    max_abs = max_rel = 0.0
    ok = True
    for o, r in zip(outputs, reference):
        o, r = o.detach().float().cpu(), r.detach().float().cpu()
        if o.shape != r.shape:
            return {"max_abs_diff": float("inf"), "max_rel_diff": float("inf"), "ok": False}
        d = (o - r).abs()
        max_abs = max(max_abs, float(d.max()) if d.numel() else 0.0)
        rel = d / r.abs().clamp(min=1.0)
        max_rel = max(max_rel, float(rel.max()) if rel.numel() else 0.0)
        ok = ok and bool((rel <= rtol).all())
    return {"max_abs_diff": max_abs, "max_rel_diff": max_rel, "ok": ok}


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(getattr(model, "module", None), nn.Module) else model


def deploy_model(model: nn.Module, device: torch.device | str) -> nn.Module:
    """The inference form of a trained model on ``device``: BN folded into the convs, eval mode, and on the CPU
    channels-last weights (oneDNN convolutions run without layout reorders; see ``gradpath.nn.to_channels_last``).
    Same outputs up to float rounding; this is the form ``benchmarks/bench_train.py`` times."""
    model = fuse_model(model.to(device))
    if torch.device(device).type == "cpu":
        to_channels_last(model)
    return model


def _deploy(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(_unwrap(model)).cpu().float().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return fuse_model(m)


def export_model(
    model: nn.Module,
    fmt: str,
    out: str | os.PathLike,
    imgsz: int = 640,
    metadata: dict[str, Any] | None = None,
    rtol: float = 1e-3,
    opset: int = 17,
    seed: int = 0,
    output_names: tuple[str, ...] = ("pred", "proto"),
) -> dict[str, Any]:
    """Write ``model``'s deploy form to ``out`` as ``fmt`` ("onnx" | "torchscript") and check it against PyTorch.

    ``metadata`` (names, stride, imgsz …) goes into the ONNX ``metadata_props`` or the TorchScript extra file
    ``config.json``. Returns ``{"format", "path", "imgsz", "max_abs_diff", "max_rel_diff", "ok"}``; raises
    ``GradpathError`` when the parity check fails (the file is left for inspection).
    """
    if fmt not in FORMATS:
        raise GradpathError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    reference = copy.deepcopy(_unwrap(model)).cpu().float().eval()
    deploy = _deploy(model)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, imgsz, imgsz, generator=g)
    with torch.no_grad():
        y = reference(x)
        ref = list(y) if isinstance(y, (tuple, list)) else [y]
    meta = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in (metadata or {}).items()}

    if fmt == "onnx":
        try:  # optional (the `export` extra), so only ONNX export needs them installed
            import onnx
            import onnxruntime as ort
        except ImportError:
            raise GradpathError("ONNX export needs the onnx and onnxruntime packages: "
                                "pip install 'gradpath[export]'") from None

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(deploy, (x,), str(out), dynamo=False, opset_version=opset, input_names=["images"],
                              output_names=list(output_names), do_constant_folding=True)
        proto = onnx.load(str(out))
        onnx.checker.check_model(proto)
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(proto, str(out))
        sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = [torch.from_numpy(a) for a in sess.run(None, {"images": x.numpy()})]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(deploy, x, check_trace=False)
            torch.jit.save(traced, str(out), _extra_files={"config.json": json.dumps(meta)})
            loaded = torch.jit.load(str(out))
        with torch.no_grad():
            y = loaded(x)
            got = list(y) if isinstance(y, (tuple, list)) else [y]
    res = {"format": fmt, "path": str(out), "imgsz": imgsz, **parity(got, ref, rtol)}
    if not res["ok"]:
        raise GradpathError(f"{fmt} export {out} differs from PyTorch: max abs diff {res['max_abs_diff']:.3g}, "
                            f"max rel diff {res['max_rel_diff']:.3g} > {rtol}")
    return res
