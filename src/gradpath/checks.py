"""Checks of user input at the boundary: devices, sizes, counts and output paths.

Why one module: the CLI promises that a user's mistake is one line naming the option (exit code 2), never a
traceback from deep inside torch. Each check here turns one kind of expected mistake into a ``GradpathError``
with that line, and returns the value in the form the library wants, so commands and the engine validate the
same way. Bugs are not caught here; they keep their tracebacks.

A leaf module: it imports only ``gradpath.errors`` (see docs/ARCHITECTURE.md for the layers).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml

from gradpath.errors import DataError, GradpathError, GradpathWarning

__all__ = ["check_device", "check_imgsz", "check_positive", "check_non_negative", "check_output_path",
           "check_workers", "available_cpus"]


def check_device(spec: str | int | None = None, local_rank: int = -1, name: str = "--device") -> torch.device:
    """``None``/``""`` → CUDA if present, else the CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"N"`` (→ ``cuda:N``)
    and ``"mps"``. A device this machine does not have is an error, not a crash at the first tensor.

    Under DDP (``local_rank >= 0``) a CUDA run uses ``cuda:<local_rank>``, so each process owns one GPU; a bare
    ``"cuda"`` otherwise means the current CUDA device."""
    if spec is None or str(spec).strip() == "":
        return _cuda_device(local_rank) if torch.cuda.is_available() else torch.device("cpu")
    text = str(spec).strip().lower()
    if text.isdigit():
        text = f"cuda:{text}"
    try:
        device = torch.device(text)
    except RuntimeError:
        raise GradpathError(f"{name} {spec!r} is not a device; use cpu, cuda, cuda:N, N or mps") from None
    if device.type == "cpu":
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise GradpathError(f"{name} {spec}: MPS is not available on this machine "
                                "(torch.backends.mps.is_available() is False); use --device cpu")
        return device
    if device.type != "cuda":
        raise GradpathError(f"{name} {spec!r}: gradpath runs on cpu, cuda or mps, not {device.type}")
    if not torch.cuda.is_available():
        raise GradpathError(f"{name} {spec}: CUDA is not available on this machine "
                            "(torch.cuda.is_available() is False); use --device cpu")
    if local_rank >= 0 or device.index is None:
        device = _cuda_device(local_rank)
    count = torch.cuda.device_count()
    if device.index >= count:
        raise GradpathError(f"{name} {spec}: there is no CUDA device {device.index}; "
                            f"this machine has {count} (cuda:0 to cuda:{count - 1})")
    return device


def _cuda_device(local_rank: int) -> torch.device:
    return torch.device("cuda", local_rank if local_rank >= 0 else torch.cuda.current_device())


def check_imgsz(value: int, name: str = "--imgsz", multiple: int = 32, minimum: int = 32) -> int:
    """A square input size: an integer of at least ``minimum`` that divides by ``multiple``.

    The default 32 is the largest stride of every registered model: a detector's feature pyramids only line up
    when the input divides by it, and a smaller input leaves 1x1 maps that BatchNorm cannot train on."""
    size = _as_int(value, name)
    if size < minimum:
        raise GradpathError(f"{name} must be at least {minimum}, got {size}")
    if size % multiple:
        lower, upper = size - size % multiple, size - size % multiple + multiple
        hint = f"{lower} or {upper}" if lower >= minimum else str(upper)
        raise GradpathError(f"{name} must be a multiple of {multiple} (the largest stride), got {size}; "
                            f"try {hint}")
    return size


def check_positive(value: int | float, name: str) -> int | float:
    """``value > 0`` (a batch size, a number of epochs, a learning rate), else a one-line error naming it."""
    _check_number(value, name)
    if not value > 0:
        raise GradpathError(f"{name} must be positive, got {value}")
    return value


def check_non_negative(value: int | float, name: str) -> int | float:
    """``value >= 0`` (iteration counts where 0 means "skip"), else a one-line error naming it."""
    _check_number(value, name)
    if not value >= 0:
        raise GradpathError(f"{name} must be 0 or more, got {value}")
    return value


def check_output_path(path: str | os.PathLike, name: str) -> Path:
    """A file the command will write: it must not be an existing folder, and its folder must exist or be
    creatable (the nearest existing ancestor is a writable folder). Nothing is created here."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise GradpathError(f"{name} {path}: is a folder; give a file name (e.g. {p / 'out'}{p.suffix or ''})")
    ancestor = p.parent
    while not ancestor.exists():
        if ancestor == ancestor.parent:
            break
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise GradpathError(f"{name} {path}: {ancestor} is a file, so the folder {p.parent} cannot be created")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise GradpathError(f"{name} {path}: the folder {ancestor} is not writable")
    return p


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, else all cores)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def check_workers(n: int, name: str = "--workers") -> int:
    """Data-loading worker processes: a negative count is an error; more workers than cores is clamped to the
    number of cores with a ``GradpathWarning``.

    Why clamp rather than refuse: extra workers still produce correct batches, they only compete with each other
    and with the training threads for the same cores, so the run is slower but not wrong. A warning lets a
    script written for a bigger machine run here as well as this machine allows."""
    workers = _as_int(n, name)
    if workers < 0:
        raise GradpathError(f"{name} must be 0 or more, got {workers}")
    cores = available_cpus()
    if workers > cores:
        warnings.warn(f"{name} {workers} is more than the {cores} CPU core(s) available; using {cores}",
                      GradpathWarning, stacklevel=2)
        return cores
    return workers


def _as_int(value: int | float | str, name: str) -> int:
    """An integer from an int, an integral float (``32.0``) or a decimal string; a bool is not a size."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise GradpathError(f"{name} must be an integer, got {value!r}")


def _check_number(value: int | float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GradpathError(f"{name} must be a number, got {value!r}")


def read_yaml(path: str | os.PathLike, where: str | None = None, what: str = "file") -> Any:
    """A user's YAML file parsed with ``yaml.safe_load`` (plain data only, never objects).

    A missing or unreadable file, or a syntax error, is a one-line ``DataError`` naming ``where`` (default: the
    path) and, for a syntax error, the line: ``data.yaml: invalid YAML at line 3``. ``what`` names the file in the
    not-found message (``hyp file not found``)."""
    p = Path(path)
    where = where or str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{where}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{where}: cannot read {what} ({type(e).__name__})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None)
        raise DataError(f"{where}: invalid YAML{at}" + (f": {problem}" if problem else "")) from None
