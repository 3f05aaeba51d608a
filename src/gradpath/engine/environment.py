"""Process-wide settings a run needs, applied for the run only and put back afterwards.

Why: training wants fewer intra-op threads when loader workers share the cores, deterministic kernels for an exact
``--resume``, and a process group under DDP. A library call must leave a notebook or a caller's program as it found
it, so each setting is recorded on entry and restored on exit, and a process group is destroyed only by the run
that created it.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

from gradpath.engine import ddp


def cpu_threads_for(workers: int, world_size: int) -> int | None:
    """Intra-op threads that leave loader workers their cores, or None to keep the current count.

    Oversubscribed OpenMP threads stall at every op's barrier (measured 20x slower steps on 2 cores), so when
    ``threads + workers`` exceeds this process's share of the cores, threads give way.
    """
    if workers <= 0:
        return None
    cores = (os.cpu_count() or 1) // max(world_size, 1)
    if torch.get_num_threads() + workers > cores:
        return max(1, cores - workers)
    return None


@contextlib.contextmanager
def run_settings(*, threads: int | None, deterministic: bool) -> Iterator[None]:
    """Apply the thread count and determinism flag for the block; restore the previous values after it."""
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        if threads is not None and threads != prev_threads:
            torch.set_num_threads(threads)
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        yield
    finally:
        if torch.get_num_threads() != prev_threads:
            torch.set_num_threads(prev_threads)
        if torch.are_deterministic_algorithms_enabled() != prev_det or (
                prev_det and torch.is_deterministic_algorithms_warn_only_enabled() != prev_warn):
            torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)


@contextlib.contextmanager
def process_group(device: torch.device, info: ddp.DistInfo, init_method: str | None) -> Iterator[bool]:
    """Join (or reuse) the process group for the block; yields whether this block created it.

    A group the caller created stays alive after the run, so a caller can run ``fit()`` twice or keep using it.
    """
    created = ddp.init_distributed(device, info, init_method)
    try:
        yield created
    finally:
        if created:
            ddp.cleanup()
