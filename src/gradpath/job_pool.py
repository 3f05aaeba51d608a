"""A process pool for independent training runs whose job processes never outlive the process that started them.

Why: ``ProcessPoolExecutor`` children are separate processes. Ctrl-C reaches the whole terminal process group, but
a ``SIGTERM`` or ``kill -9`` sent to the parent alone (a cluster pre-empting it, ``kill PID``) leaves its children
training, unseen, for hours, competing for the cores with whatever runs next. Each job process here watches its
parent; once the parent is gone it sends itself ``SIGTERM``, which a run in progress answers as it answers a
cluster's (it saves an interrupt checkpoint at its next safe point and stops), so a rerun resumes where it stopped.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import torch

__all__ = ["job_pool"]


def _watch_parent(parent: int, poll_s: float) -> None:
    """Until the parent dies, sleep; then ask this process to stop, again each poll (a repeat only repeats it)."""
    while os.getppid() == parent:
        time.sleep(poll_s)
    while True:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(poll_s)


def _init_job(threads: int, parent: int, poll_s: float) -> None:
    """Job process initializer: its intra-op threads (its own process: the caller's are untouched) and the watch."""
    torch.set_num_threads(threads)
    threading.Thread(target=_watch_parent, args=(parent, poll_s), name="gradpath-parent-watch",
                     daemon=True).start()


def job_pool(jobs: int, threads: int, poll_s: float = 2.0) -> ProcessPoolExecutor:
    """A ``spawn`` pool of ``jobs`` processes with ``threads`` intra-op threads each, tied to this process's life.

    ``spawn``, not ``fork``: a forked child inherits the parent's OpenMP pool and torch state, which deadlocks or
    oversubscribes; a spawned one starts clean.
    """
    return ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_job, initargs=(max(1, threads), os.getpid(), poll_s))
