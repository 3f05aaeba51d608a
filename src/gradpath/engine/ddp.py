"""Multi-process data-parallel training through ``torch.distributed`` (launched by ``torchrun``).

``torchrun --nproc_per_node N -m gradpath.cli train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK; each process
then owns one device (``cuda:LOCAL_RANK`` with NCCL, or the CPU with gloo) and a ``DistributedSampler`` shard.
Every rank evaluates the unwrapped EMA model on its shard of the val set and the task merges the shards (so no
collective is ever issued by one rank alone); rank 0 then writes the files while the others wait on a barrier,
and its view of "best" is broadcast so every rank agrees.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from gradpath.engine.utils import env_int


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = -1
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info_from_env() -> DistInfo:
    """What torchrun told this process (``world_size == 1`` and ``local_rank == -1`` when launched plainly)."""
    world = env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistInfo()
    return DistInfo(rank=env_int("RANK", 0), local_rank=env_int("LOCAL_RANK", 0), world_size=world)


def init_distributed(device: torch.device, info: DistInfo | None = None, init_method: str | None = None,
                     timeout_min: float = 60.0) -> bool:
    """Join the process group (NCCL for CUDA devices, gloo otherwise); returns whether this call created it.

    A no-op (False) for single-process runs and when the caller already has a group. ``init_method`` defaults to
    ``env://`` (torchrun); tests pass ``file://`` with an explicit ``info``.
    """
    info = info or dist_info_from_env()
    if not info.enabled or (dist.is_available() and dist.is_initialized()):
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, init_method=init_method or "env://", rank=info.rank,
                            world_size=info.world_size, timeout=datetime.timedelta(minutes=timeout_min))
    return True


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    if is_dist():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send a picklable object from ``src`` to every rank (returns it unchanged without DDP)."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Copy ``src``'s buffers (e.g. BatchNorm running statistics) to every rank, in place."""
    if not is_dist():
        return
    for b in module.buffers():
        dist.broadcast(b.data, src=src)


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean over ranks (used for the logged loss, so rank 0 reports the global average)."""
    if not is_dist():
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / dist.get_world_size()


def cleanup() -> None:
    if is_dist():
        dist.destroy_process_group()


def any_rank(*flags: bool) -> list[bool]:
    """Each flag OR-ed over the ranks (unchanged without DDP), so every rank takes the same branch.

    Why: a rank that stops (a signal, a non-finite loss) while the others run on would leave them waiting in the
    next gradient all-reduce until the process-group timeout.
    """
    if not is_dist():
        return [bool(f) for f in flags]
    t = torch.tensor([float(bool(f)) for f in flags])
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def gather_to_main(obj: Any) -> list[Any]:
    """Every rank's ``obj`` as a list indexed by rank on rank 0 (``[obj]`` without DDP; other ranks get [])."""
    if not is_dist():
        return [obj]
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out or []
