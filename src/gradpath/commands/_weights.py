"""What ``val``, ``predict`` and ``export`` share: a trained checkpoint, the task it belongs to, its input size."""
from __future__ import annotations

import argparse
from typing import Any

from torch import nn

from gradpath.engine.checkpoint import model_from_checkpoint
from gradpath.errors import GradpathError
from gradpath.tasks.registry import get_task, list_tasks


def add_weights_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True,
                   help="checkpoint written by `gradpath train` (e.g. runs/segment/x/weights/best.pt)")
    p.add_argument("--imgsz", type=int, help="square input size (default: the training size stored in the checkpoint)")


def add_task_args(p: argparse.ArgumentParser, hook: str) -> None:
    """Each task's own options for a command (its ``commands.add_<hook>_args``), in a group named after the task."""
    for name in list_tasks():
        adder = getattr(getattr(get_task(name), "commands", None), f"add_{hook}_args", None)
        if callable(adder):
            adder(p.add_argument_group(f"{name} options"))


def load_weights(args: argparse.Namespace, command: str) -> tuple[nn.Module, dict[str, Any], Any, int]:
    """(model, checkpoint, the task's command module, input size) for ``--weights``.

    The input size is ``--imgsz``, else the training size stored in the checkpoint, else the model's own.
    """
    model, ck = model_from_checkpoint(args.weights)
    task = ck.get("task")
    if not task:
        raise GradpathError(f"{args.weights} does not say which task it was trained for")
    commands = getattr(get_task(task), "commands", None)
    if commands is None or not callable(getattr(commands, f"run_{command}", None)):
        raise GradpathError(f"{args.weights} is a {task!r} checkpoint and the {task} task has no `{command}`")
    imgsz = args.imgsz or (ck.get("meta") or {}).get("imgsz") or int(getattr(model, "default_imgsz", 640))
    return model, ck, commands, int(imgsz)
