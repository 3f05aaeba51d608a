"""Model cost: parameters, MACs/FLOPs, activation memory peak, latency.

Counting rules (docs/counting.md explains them with a hand-checked example; written here too because the numbers
depend on them):

- ``gflops`` = FLOPs of one forward of the *deploy* model on a (batch, 3, imgsz, imgsz) input, counted by
  ``torch.utils.flop_counter.FlopCounterMode``: 2 × multiply-accumulates of every conv, linear and matmul.
  Bias, BatchNorm, activations, pooling, add/concat, upsampling and implicit layers are not counted — the
  YOLOv5 ``model_info`` rule on the fused model, and the darknet "BFLOPs" rule. ``gmacs`` = gflops / 2.
- ``params`` = parameters of the deploy model, BN folded into its conv (one bias per folded conv), as
  YOLOv5 reports after ``model.fuse()``. Folding is exact for ``ConvBNAct`` and for a Conv followed directly
  by a BatchNorm inside an ``nn.Sequential``; any other BatchNorm is counted unfolded (γ and β).
- ``params_weights`` = conv and linear *weights* only (no bias, no BN): darknet's count (Table 2).
- ``params_train`` = every trainable parameter of the model as given.

Counting runs on a ``meta``-device copy, so a 200-GFLOP model costs milliseconds and no memory; the same copy
measures the activation memory peak by tracking live tensor storages. Latency runs the real fused model.
"""
from __future__ import annotations

import copy
import functools
import statistics
import time
import weakref
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks
from torch.overrides import TorchFunctionMode

from gradpath.errors import GradpathError
from gradpath.nn.conv import ConvBNAct, fuse_model

_WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _foldable_bns(model: nn.Module) -> dict[int, int]:
    """id(BN module) → extra bias params its folding adds (0 if the conv already has a bias)."""
    out: dict[int, int] = {}
    for m in model.modules():
        if isinstance(m, ConvBNAct) and isinstance(m.bn, _BN):
            out[id(m.bn)] = 0 if m.conv.bias is not None else m.conv.out_channels
        elif isinstance(m, nn.Sequential):
            kids = list(m.children())
            for a, b in zip(kids, kids[1:]):
                if isinstance(a, (nn.Conv2d, nn.Conv1d, nn.Conv3d)) and isinstance(b, _BN):
                    out[id(b)] = 0 if a.bias is not None else a.out_channels
    return out


def count_params(model: nn.Module) -> dict[str, int]:
    """The three parameter counts of the module docstring."""
    folded = _foldable_bns(model)
    bn_param_ids = {id(p) for m in model.modules() if id(m) in folded for p in m.parameters(recurse=False)}
    seen: set[int] = set()
    fused = 0
    for p in model.parameters():
        if id(p) in seen or id(p) in bn_param_ids:
            continue
        seen.add(id(p))
        fused += p.numel()
    fused += sum(folded.values())
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, _WEIGHT_LAYERS))
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"params": fused, "params_weights": weights, "params_train": train}


def _output_tensors(out: Any) -> list[torch.Tensor]:
    """The tensors a torch function returned (a tensor, or tuples/lists of them)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _output_tensors(o)]
    return []


class _LiveStorages:
    """Running and peak bytes of the tensor storages created during a forward that are still alive.

    A storage is identified by its Python object: PyTorch keeps one object per storage for as long as the storage
    lives (every view and in-place result hands back the same one), so views and in-place ops are counted once,
    and a weak reference to that object tells us the moment the storage is freed. This works on the ``meta``
    device, where storages have no data pointer to tell them apart. Storages that existed before the forward
    (parameters, buffers, the input) are held in ``known`` and never counted.
    """

    def __init__(self, known: Iterable[torch.Tensor]) -> None:
        # holding the objects keeps their ids from being reused by new storages while we measure
        self.known = {id(s): s for s in (t.untyped_storage() for t in known)}
        self.live: dict[int, tuple[weakref.ref, int]] = {}
        self.bytes = 0
        self.peak = 0

    def add(self, t: torch.Tensor) -> None:
        if t.layout != torch.strided:  # sparse and other layouts have no single storage
            return
        st = t.untyped_storage()
        key = id(st)
        if key in self.known or key in self.live:
            return
        n = st.nbytes()
        self.live[key] = (weakref.ref(st, functools.partial(self._freed, key)), n)
        self.bytes += n
        self.peak = max(self.peak, self.bytes)

    def _freed(self, key: int, ref: weakref.ref) -> None:
        entry = self.live.get(key)
        if entry is not None and entry[0] is ref:
            del self.live[key]
            self.bytes -= entry[1]


class _TrackOutputs(TorchFunctionMode):
    """Adds the output of every torch function called in the forward (module layers, ``torch.cat``, tensor
    arithmetic and indexing alike) to a :class:`_LiveStorages`. Only the outermost call is seen: PyTorch turns
    the mode off inside its own handler, so a Python-level function such as ``F.interpolate`` counts as one op,
    and temporaries that live and die inside one call are not counted."""

    def __init__(self, live: _LiveStorages) -> None:
        super().__init__()
        self.live = live

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in _output_tensors(out):
            self.live.add(t)
        return out


def _peak_forward_bytes(model: nn.Module, x: torch.Tensor, grad: bool) -> int:
    """Peak bytes of live activations in one forward of ``model`` on ``x``.

    With ``grad``, autograd's pack hook also sees every tensor saved for backward, including those an op creates
    internally and never returns (BatchNorm's batch statistics, max-pool indices); the graph keeps them alive
    until the output is dropped, so they stay in the live set like any other activation.
    """
    known = [x, *model.parameters(), *model.buffers()]
    live = _LiveStorages(known)

    def pack(t: torch.Tensor) -> torch.Tensor:
        live.add(t)
        return t

    with torch.set_grad_enabled(grad), saved_tensors_hooks(pack, lambda t: t), _TrackOutputs(live):
        model(x)  # the output (and with it the graph) is dropped at once: only the peak during the forward counts
    return live.peak


def _example(model: nn.Module, imgsz: int, batch: int, device: torch.device | str) -> torch.Tensor:
    chans = getattr(model, "in_chans", 3)
    return torch.zeros(batch, chans, imgsz, imgsz, device=device)


def _meta_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy on the meta device; a model already on meta is used as it is (no weights to copy)."""
    if all(p.device.type == "meta" for p in model.parameters()):
        return model.eval()
    return copy.deepcopy(model).to("meta").eval()


def count_flops(model: nn.Module, imgsz: int, batch: int = 1) -> int:
    """FLOPs (2 × MACs of conv/linear/matmul) of one eval-mode forward, counted on a meta copy."""
    # Imported here, not at the top: torch's flop counter imports triton where it is installed (about 0.3 s), and
    # ``import gradpath`` should not pay that for commands that count nothing.
    from torch.utils.flop_counter import FlopCounterMode

    meta = _meta_copy(model)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        meta(_example(meta, imgsz, batch, "meta"))
    return int(counter.get_total_flops())


def activation_memory(model: nn.Module, imgsz: int, batch: int = 1) -> dict[str, float]:
    """Peak MiB of live activations in one forward: inference (no grad) and training (what autograd keeps
    for backward, plus the working set). Parameters, buffers and the input are not included."""
    meta = _meta_copy(model)
    x = _example(meta, imgsz, batch, "meta")
    res = {"act_mem_infer_mb": _peak_forward_bytes(meta, x, grad=False) / 2**20}
    meta.train()
    for p in meta.parameters():
        p.requires_grad_(True)
    res["act_mem_train_mb"] = _peak_forward_bytes(meta, x, grad=True) / 2**20
    return res


def measure_latency(
    model: nn.Module, imgsz: int, batch: int = 1, device: str | torch.device | None = None,
    warmup: int = 2, iters: int = 10,
) -> dict[str, float]:
    """Median and mean wall time (ms) of a forward of the fused model; ``warmup`` runs are discarded."""
    dev = torch.device(device) if device else next(model.parameters()).device
    m = fuse_model(copy.deepcopy(model)).to(dev)
    x = _example(m, imgsz, batch, dev)
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            m(x)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    return {
        "latency_ms": statistics.median(times),
        "latency_mean_ms": statistics.fmean(times),
        "latency_iters": iters,
        "latency_device": str(dev),
    }


def profile(
    model: nn.Module,
    imgsz: int | None = None,
    *,
    batch: int = 1,
    memory: bool = True,
    iters: int = 0,
    warmup: int = 2,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Cost of ``model`` at ``imgsz`` (default: the model's own ``default_imgsz``, else 224).

    Returns ``params``, ``params_weights``, ``params_train``, ``gmacs``, ``gflops`` (see module docstring),
    ``act_mem_infer_mb`` / ``act_mem_train_mb`` (with ``memory``), and ``latency_ms`` when ``iters > 0``.
    """
    imgsz = int(imgsz or getattr(model, "default_imgsz", 224))
    if imgsz <= 0 or batch <= 0:
        raise GradpathError(f"imgsz and batch must be positive, got imgsz={imgsz}, batch={batch}")
    was_training = model.training
    meta = _meta_copy(model)  # one copy serves the FLOP count and the memory measurement
    flops = count_flops(meta, imgsz, batch)
    res: dict[str, Any] = {
        "model": getattr(model, "gradpath_name", type(model).__name__),
        "imgsz": imgsz,
        "batch": batch,
        "num_classes": getattr(model, "num_classes", None),
        **count_params(model),
        "gmacs": flops / 2e9,
        "gflops": flops / 1e9,
    }
    if memory:
        res.update(activation_memory(meta, imgsz, batch))
    if iters > 0:
        res.update(measure_latency(model, imgsz, batch, device, warmup, iters))
    model.train(was_training)
    return res
