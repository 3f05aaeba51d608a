"""The deploy form of a trained model, and its export (ONNX, ``torch.export``, TorchScript, safetensors) with an
automatic parity check.

Deploy form = BN folded into the convolutions (``gradpath.nn.fuse_model``), eval mode, fixed batch 1: every zoo
model's forward is then tensor-only (a tensor or a tuple of tensors: a detector gives ``(pred, proto)``, a
classifier its logits), which is what the graph formats need; tasks name the outputs.

Formats:
- ``onnx``: the deploy form traced by ``torch.onnx.export`` at ``opset`` (``ONNX_OPSETS``), run by onnxruntime.
  Needs the ``export`` extra (``pip install 'gradpath[export]'``); metadata in ``metadata_props``.
- ``pt2``: ``torch.export.export`` of the deploy form at batch 1, written by ``torch.export.save`` and run back
  through ``torch.export.load``; metadata in the extra file ``config.json``. The successor of TorchScript.
- ``torchscript``: ``torch.jit.trace``; kept for existing users, deprecated by PyTorch (2.14), prefer ``pt2``.
- ``safetensors``: weights and metadata only, no code and no graph. The weights are the *trained* state dict of
  the registered network (BN not folded, the checkpoint's ``weights``), not the deploy form: with the header's
  ``model`` name and ``config`` a loader rebuilds the network with ``gradpath.models.create_model`` and loads
  them strictly, exactly as a checkpoint is read (``read_safetensors`` returns the checkpoint-shaped dict), and
  folding BN afterwards takes milliseconds. A deploy-form state dict would fit no network ``create_model`` builds.

Every written file is read back the way a user would read it and run once on a random image against the unfused
PyTorch model: the export fails when any output differs by more than ``rtol · max(1, |ref|)`` (1e-3 relative for
values above 1, 1e-3 absolute below — boxes are in pixels, scores in [0, 1]). Metadata values that are not
strings are stored JSON-encoded (safetensors headers hold only strings).
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn

from gradpath.errors import GradpathError
from gradpath.models import create_model
from gradpath.nn import fuse_model, to_channels_last

__all__ = ["deploy_model", "export_model", "parity", "read_safetensors", "FORMATS", "SUFFIXES", "ONNX_OPSETS",
           "SAFETENSORS_FORMAT"]

FORMATS = ("onnx", "pt2", "torchscript", "safetensors")
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".torchscript", "safetensors": ".safetensors"}
# Opsets the zoo exports at and onnxruntime runs: below 9 nearest upsampling by size has no ONNX form; 23 is the
# newest the TorchScript-based exporter of torch 2.14 writes.
ONNX_OPSETS = range(9, 24)
SAFETENSORS_FORMAT = "gradpath-safetensors"  # header key "format"; "format_version" is SAFETENSORS_VERSION
SAFETENSORS_VERSION = "1"


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
    """Write ``model`` to ``out`` as ``fmt`` (one of ``FORMATS``), read it back and check it against PyTorch.

    ``metadata`` (task, model, config, names, stride, imgsz …) goes into the ONNX ``metadata_props``, the
    TorchScript/pt2 extra file ``config.json`` or the safetensors header; safetensors needs its ``task``,
    ``model`` (registered name) and ``config`` (resolved config) to be rebuildable. ``opset`` is used by ONNX
    only. Returns ``{"format", "path", "imgsz", "max_abs_diff", "max_rel_diff", "ok"}``; raises
    ``GradpathError`` when the parity check fails (the file is left for inspection).
    """
    if fmt not in FORMATS:
        raise GradpathError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        if opset not in ONNX_OPSETS:
            raise GradpathError(f"ONNX opset {opset} is not supported; choose {ONNX_OPSETS[0]}..{ONNX_OPSETS[-1]}")
        try:  # optional (the `export` extra), so only ONNX export needs them installed
            import onnx
            import onnxruntime as ort
        except ImportError:
            raise GradpathError("ONNX export needs the onnx and onnxruntime packages: "
                                "pip install 'gradpath[export]'") from None
    meta = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in (metadata or {}).items()}
    if fmt == "safetensors":
        missing = [k for k in ("task", "model", "config") if k not in meta]
        if missing:
            raise GradpathError(f"safetensors export needs metadata {', '.join(missing)}: without the registered "
                                "model name and config the weights cannot be rebuilt into a network")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    reference = copy.deepcopy(_unwrap(model)).cpu().float().eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, imgsz, imgsz, generator=g)
    with torch.no_grad():
        ref = _as_list(reference(x))

    if fmt == "safetensors":
        got = _export_safetensors(reference, out, meta, x)
    else:
        deploy = _deploy(model)
        if fmt == "onnx":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    torch.onnx.export(deploy, (x,), str(out), dynamo=False, opset_version=opset,
                                      input_names=["images"], output_names=list(output_names),
                                      do_constant_folding=True)
                except torch.onnx.OnnxExporterError as e:
                    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    raise GradpathError(f"ONNX opset {opset} cannot express this model ({first[:200]}); "
                                        "try a newer --opset") from None
            proto = onnx.load(str(out))
            onnx.checker.check_model(proto)
            for k, v in meta.items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = k, v
            onnx.save(proto, str(out))
            sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            got = [torch.from_numpy(a) for a in sess.run(None, {"images": x.numpy()})]
        elif fmt == "pt2":
            program = torch.export.export(deploy, (x,))
            torch.export.save(program, str(out), extra_files={"config.json": json.dumps(meta)})
            loaded = torch.export.load(str(out)).module()
            with torch.no_grad():
                got = _as_list(loaded(x))
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(deploy, x, check_trace=False)
                torch.jit.save(traced, str(out), _extra_files={"config.json": json.dumps(meta)})
                loaded = torch.jit.load(str(out))
            with torch.no_grad():
                got = _as_list(loaded(x))
    res = {"format": fmt, "path": str(out), "imgsz": imgsz, **parity(got, ref, rtol)}
    if not res["ok"]:
        raise GradpathError(f"{fmt} export {out} differs from PyTorch: max abs diff {res['max_abs_diff']:.3g}, "
                            f"max rel diff {res['max_rel_diff']:.3g} > {rtol}")
    return res


def _as_list(y: Any) -> list[torch.Tensor]:
    return list(y) if isinstance(y, (tuple, list)) else [y]


def _export_safetensors(reference: nn.Module, out: Path, meta: dict[str, str], x: torch.Tensor) -> list[torch.Tensor]:
    """Write the trained state dict and ``meta`` (strings) to ``out``; the outputs of the network rebuilt from it."""
    # clone: safetensors refuses tensors that share storage, and every tensor must be contiguous
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in reference.state_dict().items()}
    header = {"format": SAFETENSORS_FORMAT, "format_version": SAFETENSORS_VERSION, **meta}
    safetensors.torch.save_file(tensors, str(out), metadata=header)
    ck = read_safetensors(out)
    rebuilt = create_model(ck["model"]["name"], **ck["model"]["config"])
    rebuilt.load_state_dict(ck["weights"])
    with torch.no_grad():
        return _as_list(rebuilt.eval()(x))


def read_safetensors(path: str | os.PathLike) -> dict[str, Any]:
    """A ``.safetensors`` file written by ``gradpath export`` as a checkpoint-shaped dict.

    Keys as in ``gradpath/engine/checkpoint.py``: ``task``, ``meta`` ({"names", "imgsz"}), ``model`` ({"name",
    "config", "overrides"}) and ``weights``, so ``model_from_checkpoint`` rebuilds it as it rebuilds a checkpoint.
    Nothing in the file is executed: safetensors holds tensors and a JSON header. A missing file, a foreign or
    damaged one, or a header without gradpath's keys is a one-line ``GradpathError`` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise GradpathError(f"safetensors file {path} does not exist")
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            header = dict(f.metadata() or {})
        weights = safetensors.torch.load_file(str(path))
    except (safetensors.SafetensorError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GradpathError(f"{path} cannot be read as safetensors ({first[:200]})") from None
    if header.get("format") != SAFETENSORS_FORMAT:
        raise GradpathError(f"{path} was not written by `gradpath export --format safetensors` "
                            "(its header has no format: gradpath-safetensors)")
    if header.get("format_version") != SAFETENSORS_VERSION:
        raise GradpathError(f"{path}: safetensors format version {header.get('format_version')} is not supported "
                            f"(this gradpath reads version {SAFETENSORS_VERSION})")
    try:
        config = json.loads(header["config"])
        names = json.loads(header["names"]) if "names" in header else None
        imgsz = int(json.loads(header["imgsz"])) if "imgsz" in header else None
        name, task = header["model"], header["task"]
    except (KeyError, ValueError, TypeError) as e:
        raise GradpathError(f"{path}: damaged gradpath header ({type(e).__name__}: {e})") from None
    if not isinstance(config, dict):
        raise GradpathError(f"{path}: damaged gradpath header (config is not a JSON object)")
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}  # JSON has no tuples
    return {"task": task, "meta": {"names": names, "imgsz": imgsz},
            "model": {"name": name, "config": config, "overrides": {}}, "weights": weights, "epoch": -1}
