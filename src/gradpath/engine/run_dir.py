"""Run folders: ``<project>/<task>/<name>`` — where a run writes, and where ``--resume`` finds it again."""
from __future__ import annotations

from pathlib import Path

from gradpath.errors import GradpathError

__all__ = ["next_run_dir", "find_resume_checkpoint", "run_dir_of"]


def next_run_dir(project: str | Path, task: str, name: str, exist_ok: bool = False) -> Path:
    """``project/task/name``, or ``name2``, ``name3`` … when it exists (nothing is overwritten unless asked).

    Only computes the path; the trainer's rank 0 creates it, so DDP ranks all pick the same folder.
    """
    base = Path(project) / task
    path = base / name
    if exist_ok or not path.exists():
        return path
    k = 2
    while (base / f"{name}{k}").exists():
        k += 1
    return base / f"{name}{k}"


def find_resume_checkpoint(resume: str, project: str | Path, task: str | None, name: str | None) -> Path:
    """``--resume`` argument → a checkpoint path: a file, a run folder, or (empty) the newest run's ``last.pt``.

    Without a path the newest run under ``<project>/<task>/`` (every task when ``task`` is None), or ``name``'s run.
    """
    if resume:
        p = Path(resume)
        if p.is_dir():
            p = p / "weights" / "last.pt"
        if not p.is_file():
            raise GradpathError(f"--resume {resume}: no checkpoint at {p}")
        return p
    bases = [Path(project) / task] if task else [d for d in Path(project).glob("*") if d.is_dir()]
    if name:
        for base in bases:
            p = base / name / "weights" / "last.pt"
            if p.is_file():
                return p
    runs = sorted((p for base in bases for p in base.glob("*/weights/last.pt")), key=lambda q: q.stat().st_mtime)
    if not runs:
        where = Path(project) / task if task else Path(project)
        raise GradpathError(f"--resume: no run with weights/last.pt under {where}; pass the checkpoint path")
    return runs[-1]


def run_dir_of(checkpoint: Path) -> Path:
    """The run folder a checkpoint belongs to (``<run>/weights/last.pt`` → ``<run>``)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "weights" else checkpoint.parent
