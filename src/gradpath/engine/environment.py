"""Process-wide settings a run needs, applied for the run only and put back afterwards.

Why: training wants fewer intra-op threads when loader workers share the cores, deterministic kernels for an exact
``--resume``, a process group under DDP, and SIGINT/SIGTERM handlers that let a stopped run save where it was. A
library call must leave a notebook or a caller's program as it found it, so each setting is recorded on entry and
restored on exit, and a process group is destroyed only by the run that created it.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any, Iterator

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
def process_group(device: torch.device, info: ddp.DistInfo, init_method: str | None,
                  timeout_min: float = 60.0) -> Iterator[bool]:
    """Join (or reuse) the process group for the block; yields whether this block created it.

    ``timeout_min`` bounds how long a collective waits for a rank that hangs (a rank that dies is noticed at once).

    A group the caller created stays alive after the run, so a caller can run ``fit()`` twice or keep using it.
    """
    created = ddp.init_distributed(device, info, init_method, timeout_min)
    try:
        yield created
    finally:
        if created:
            ddp.cleanup()


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped a run after it saved an interrupt checkpoint; ``str(e)`` says where it is.

    A ``KeyboardInterrupt``, so a caller's ``except KeyboardInterrupt`` (and the CLI's exit code 130) still apply.
    """

    def __init__(self, message: str, checkpoint: str | None = None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.exit_code = 128 + signal.SIGINT


class RunTerminated(SystemExit):
    """SIGTERM (e.g. a cluster pre-empting the job) stopped a run after it saved an interrupt checkpoint.

    SIGTERM's default action ends the process, so the run ends it too, with the shell's status for it (143), but
    only after the checkpoint is on disk and ``finally`` blocks have put the process settings back.
    """

    def __init__(self, message: str, checkpoint: str | None = None) -> None:
        super().__init__(128 + signal.SIGTERM)
        self.message = message
        self.checkpoint = checkpoint

    def __str__(self) -> str:
        return self.message


class StopRequests:
    """Turns SIGINT/SIGTERM into a request the training loop honours at its next safe point.

    Why: a signal that raises in the middle of an optimizer step or a checkpoint write leaves nothing consistent
    to save. The handler only records the signal; the loop saves the state it reached and then stops
    (``RunInterrupted`` / ``RunTerminated``). A second Ctrl-C while the first is pending stops at once (the
    checkpoint writes are atomic, so the previous ``last.pt`` stays whole).
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
        elif signum == signal.SIGINT:  # Ctrl-C pressed twice: stop now
            raise KeyboardInterrupt
        # A repeated SIGTERM only repeats the request: a cluster signals every process of a job and torchrun
        # passes its own on to the ranks, and neither must cut the checkpoint write short.

    @property
    def pending(self) -> bool:
        return self.signum is not None

    def stop(self, message: str, checkpoint: str | None) -> None:
        """Raise the exception that ends the run for the recorded signal."""
        if self.signum == signal.SIGTERM:
            raise RunTerminated(message, checkpoint)
        raise RunInterrupted(message, checkpoint)


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequests]:
    """Record SIGINT/SIGTERM for the block instead of dying mid-step; the previous handlers come back after it.

    Handlers can only be installed from the main thread; elsewhere (a run started in a worker thread) the block
    installs nothing and signals keep their usual effect. A signal the caller ignores (``SIG_IGN``) stays ignored.
    """
    requests = StopRequests()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            old = signal.getsignal(signum)
            if old is signal.SIG_IGN or old is None:  # None: installed outside Python; leave it alone
                continue
            previous[signum] = old
            signal.signal(signum, requests._handle)
    try:
        yield requests
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
