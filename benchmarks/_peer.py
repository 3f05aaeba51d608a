"""What the side-by-side benchmarks share: a *peer worker* in another venv that times work on request, so the
rounds of the two sides interleave (ours, theirs, ours, theirs, ...) although they live in two processes.

Why a worker and not one process: the peers (timm, ultralytics, the ``yolov5`` package) are never gradpath
dependencies and are not installed in gradpath's venv, and gradpath is not installed in theirs. Why
interleaved: on a shared machine the load drifts over minutes; alternating short rounds lets the drift hit both
sides alike, and the per-iteration medians over all rounds are compared.

Protocol: the worker is ``python -c PROTOCOL + <peer code>`` in the peer venv; it reads one JSON request per
stdin line (``{"cmd": name, "args": [...]}``) and answers one line ``@@ <json>`` on stdout. Anything else the
peer library prints is ignored; its stderr goes to a temporary file, shown when the worker dies. A worker exits
when its parent does, even in the middle of a request. Only lists of
argv strings and JSON travel: no shell, no pickles (tensors go through a ``torch.save`` file read back with
``weights_only=True``).
"""
from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

# Prepended to every peer code string (which may then use ``sys``): the same timing loop as ``times`` below,
# and the request loop.
PROTOCOL = r'''
import sys
import json as _json, os as _os, sys as _sys, threading as _threading, time as _time
def _exit_with_parent(parent=_os.getppid()):
    # a request can run for many minutes (bench_epoch trains whole epochs) without reading stdin, so the end of
    # stdin cannot tell the worker that the benchmark died; an orphan would go on training and load the machine
    # under the next benchmark (seen once)
    while _os.getppid() == parent:
        _time.sleep(1)
    _os._exit(3)
_threading.Thread(target=_exit_with_parent, daemon=True).start()
def _times(fn, n):
    out = []
    for _ in range(int(n)):
        t0 = _time.perf_counter(); fn(); out.append(_time.perf_counter() - t0)
    return out
def _serve(handlers):
    for _line in _sys.stdin:
        _req = _json.loads(_line)
        if _req["cmd"] == "quit":
            break
        _out = handlers[_req["cmd"]](*_req.get("args", []))
        print("@@ " + _json.dumps(_out), flush=True)
'''


def times(fn: Callable[[], Any], n: int) -> list[float]:
    """Seconds of each of ``n`` calls of ``fn`` (the peer side runs the same loop)."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


class PeerError(RuntimeError):
    pass


class Peer:
    """A worker process in the peer venv: ``Peer(python, code, argv).ask("cmd", *args) -> reply``."""

    def __init__(self, python: str, code: str, argv: list[str]) -> None:
        self._err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([python, "-c", PROTOCOL + code, *argv], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, text=True, bufsize=1)

    def stderr_tail(self, n: int = 3000) -> str:
        self._err.flush()
        self._err.seek(0)
        return self._err.read()[-n:]

    def ask(self, cmd: str, *args: Any) -> Any:
        try:
            self.proc.stdin.write(json.dumps({"cmd": cmd, "args": list(args)}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker is gone: reading below reports why
        for line in self.proc.stdout:
            if line.startswith("@@ "):
                return json.loads(line[3:])
        raise PeerError(f"peer worker exited (code {self.proc.wait()}) during {cmd!r}:\n{self.stderr_tail()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"cmd": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=60)
            except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._err.close()

    def __enter__(self) -> "Peer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def same_torch(ours: str, theirs: str) -> bool:
    """Same torch release on both sides (the local build suffix, ``+cpu``/``+cu130``, may differ: the CPU kernels
    of one release are the same)."""
    return ours.split("+")[0] == theirs.split("+")[0]


def check_torch(ours: str, theirs: str, allow_mismatch: bool) -> None:
    print(f"torch: gradpath side {ours}, peer side {theirs}")
    if not same_torch(ours, theirs):
        msg = (f"torch differs between the sides ({ours} vs {theirs}): the comparison would measure torch builds, "
               "not models")
        if not allow_mismatch:
            raise SystemExit(f"error: {msg}; install torch=={ours.split('+')[0]} in the peer venv "
                             "(or pass --allow-torch-mismatch)")
        print(f"WARNING: {msg}")


def interleave(sides: dict[str, Callable[[int], list[float]]], rounds: int, iters: int) -> dict[str, list[float]]:
    """``rounds`` × (each side ``iters`` timed calls, in turn); returns every side's per-call seconds."""
    out: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(rounds):
        for k, fn in sides.items():
            out[k] += fn(iters)
    return out


def seg_train_step(model: Any, loss_fn: Any, opt: Any, batch: dict) -> None:
    """gradpath's side of a seg training step: forward, ``SegmentLoss``, backward, optimizer step."""
    loss, _ = loss_fn(model(batch["img"].float() / 255), batch["targets"], batch["masks"])
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def run_sides(sides: dict[str, Callable[[int], list[float]]], warmup: int, rounds: int,
              iters: int) -> dict[str, float]:
    """``warmup`` untimed calls per side, then ``interleave``; returns each side's median seconds per call."""
    if warmup:
        for fn in sides.values():
            fn(warmup)
    return {k: median(v) for k, v in interleave(sides, rounds, iters).items()}


def row(key: str, work: str, gradpath: float | None, peer: float | None, unit: str, higher_is_better: bool,
        **extra: Any) -> dict:
    """One measured line of a benchmark's JSON ``rows`` (what run_all.py renders)."""
    return {"key": key, "work": work, "gradpath": gradpath, "peer": peer, "unit": unit,
            "higher_is_better": higher_is_better, **extra}


def write_result(args: Any, bench: str, info: dict, rows: list, **extra: Any) -> None:
    """A peer benchmark's ``--json`` file: its rows, both sides' torch, the options it ran with, and ``extra``."""
    import torch  # here, not at the top: a script's --help should not wait for torch to import

    write_json(args.json, {"bench": bench, "threads": args.threads, "peer_lib": info.get("lib"),
                           "torch": {"gradpath": torch.__version__, "peer": info.get("torch")},
                           "config": {k: v for k, v in vars(args).items() if k != "json"}, **extra, "rows": rows})


def write_json(path: str | None, obj: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(obj, indent=2) + "\n")
        print(f"wrote {path}")
