"""Full-scale reproduction: the paper's training of every row, as ``torchrun`` commands a cluster can run.

``full_commands`` writes the dataset yaml (with ``DATA_ROOT`` replaced by ``--data-root`` when given) and returns
one command per row; ``launch`` runs them one after another (argument lists, no shell). ``dry_run`` builds a row's
model and runs one forward/backward at the real input size, so a recipe is known to start before a cluster is
booked.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import torch

from gradpath.errors import GradpathError
from gradpath.experiments.tables import TableSpec
from gradpath.models.registry import create_model
from gradpath.reproduce.recipes import FULL

__all__ = ["full_commands", "launch", "dry_run", "full_imgsz"]


def full_imgsz(spec: TableSpec) -> int:
    recipe = FULL[spec.task]
    return int(recipe.args[recipe.args.index("--imgsz") + 1])


def full_commands(spec: TableSpec, out: Path, data_root: str | None = None, nproc: int | None = None,
                  project: str = "runs") -> list[list[str]]:
    """``torchrun`` argument lists, one per row, after writing the data yaml into ``out``."""
    if spec.analysis_only:
        raise GradpathError(f"{spec.name} is measured by the analyzer, not trained: run it with --scale small")
    recipe = FULL[spec.task]
    out.mkdir(parents=True, exist_ok=True)
    yaml_path = out / recipe.data_yaml
    yaml_path.write_text(recipe.data_text.replace("DATA_ROOT", data_root or "DATA_ROOT"))
    cmds = []
    for row in spec.rows:
        cmds.append(["torchrun", "--nproc_per_node", str(nproc or recipe.nproc), "-m", "gradpath.cli", "train",
                     "--model", row.model, "--data", str(yaml_path), *recipe.args, "--project", project,
                     "--name", f"{spec.name}-{row.key}"])
    return cmds


def launch(cmds: list[list[str]], data_root: str | None) -> int:
    """Run the commands in turn; stop at the first failure and return its exit code."""
    if not data_root:
        raise GradpathError("--launch needs --data-root (where COCO / ImageNet lives on this machine)")
    for cmd in cmds:
        print("$ " + shlex.join(cmd), flush=True)
        rc = subprocess.run(cmd, check=False).returncode
        if rc:
            print(f"stopped: the command above exited {rc}", file=sys.stderr)
            return rc
    return 0


def dry_run(model_name: str, imgsz: int, num_classes: int | None = None) -> float:
    """One forward/backward of the full-size model at the recipe's input size on the CPU; returns the loss."""
    kw = {"num_classes": num_classes} if num_classes else {}
    model = create_model(model_name, **kw).train()
    out = model(torch.rand(1, 3, imgsz, imgsz))
    tensors = [t for t in (out if isinstance(out, (list, tuple)) else [out]) for t in
               (t if isinstance(t, (list, tuple)) else [t])]
    loss = sum(t.float().mean() for t in tensors)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    if missing:
        raise AssertionError(f"{model_name}: no gradient reached {missing[:3]}")
    return float(loss)
