"""One CPU thread for a block of tiny tensor ops.

Why: for tensors of a few KB, intra-op threads only add synchronisation — 10-20× slower when the cores are busy
(measured on this project's 2-core machines in analysis shape propagation and per-box mask decoding).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def one_cpu_thread(device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(1)`` on CPU and restore the setting after; no-op elsewhere."""
    n = torch.get_num_threads()
    if torch.device(device).type != "cpu" or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
