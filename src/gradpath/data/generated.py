"""Embedded datasets generated once and cached: the folder logic the generators share.

Why one helper: a generated set must never be half-written (a crash mid-generation would leave a set that later
runs silently train on), must never be reused when its settings differ, and two processes (DDP ranks, parallel
runs) may ask for it at the same moment.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from gradpath.errors import DataError

__all__ = ["generate_once"]


def generate_once(root: Path, kind: str, meta_name: str, meta: dict[str, Any], write: Callable[[Path], None]) -> Path:
    """``root`` holding the ``kind`` set described by ``meta``.

    Reused when its ``meta_name`` file holds the same settings; refused (one-line ``DataError``) when it holds
    other settings or is a non-empty folder of something else; otherwise ``write(tmp)`` fills a temporary sibling
    folder, the settings file is written last, and the folder is renamed into place — atomic, and when another
    process finished first its copy is kept.
    """
    meta_file = root / meta_name
    if meta_file.is_file():
        if json.loads(meta_file.read_text()) != meta:
            raise DataError(f"{root}: holds a {kind} set generated with other settings; use another folder")
        return root
    if root.exists() and any(root.iterdir()):
        raise DataError(f"{root}: exists and is not a {kind} cache; use another folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        write(tmp)
        (tmp / meta_name).write_text(json.dumps(meta, indent=1))  # written last: marks a complete set
        try:
            os.rename(tmp, root)  # atomic; fails if another process finished first (or root is non-empty)
        except OSError:
            if not meta_file.is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
