"""The task registry: ``train``, ``val``, ``predict`` and ``export`` find a task by name here.

A task is a sub-package ``gradpath.tasks.<name>`` whose ``__init__`` registers its task class, so adding a task is
adding one folder: it is discovered by name (imported on first use) and nothing in ``engine/`` or in the commands
changes. Tasks defined elsewhere (a user's, a test's) call ``register_task`` themselves.
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Any

import gradpath.tasks as _tasks_pkg
from gradpath.errors import GradpathError

__all__ = ["register_task", "unregister_task", "get_task", "list_tasks"]

_REGISTRY: dict[str, type] = {}


def register_task(cls: type) -> type:
    """Class decorator: make ``cls`` (it has a ``name``) available to the CLI and to ``--resume``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a non-empty class attribute `name` to be registered as a task")
    known = _REGISTRY.get(name)
    if known is not None and known is not cls:
        raise ValueError(f"task {name!r} is already registered ({known.__module__}.{known.__qualname__})")
    _REGISTRY[name] = cls
    return cls


def unregister_task(name: str) -> None:
    """Remove a task registered at run time (tests register toy tasks and must leave the registry as they found it)."""
    _REGISTRY.pop(name, None)


def _packages() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(_tasks_pkg.__path__) if m.ispkg)


def list_tasks() -> list[str]:
    """Every task name: the task sub-packages and any task registered at run time."""
    return sorted(set(_packages()) | set(_REGISTRY))


def get_task(name: str) -> Any:
    """The task class registered as ``name``, importing ``gradpath.tasks.<name>`` on first use."""
    if name not in _REGISTRY and name in _packages():
        importlib.import_module(f"{_tasks_pkg.__name__}.{name}")
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list_tasks(), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else f" Known tasks: {', '.join(list_tasks())}."
        raise GradpathError(f"unknown task {name!r}.{hint}")
    return _REGISTRY[name]
