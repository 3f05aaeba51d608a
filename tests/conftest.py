"""Fixtures shared across test folders: a free TCP port chosen by the OS, and a tiny generated `shapes` set."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gradpath.data import generate_shapes


@pytest.fixture
def free_port() -> int:
    """A port the OS reports free right now (bind to port 0), for a DDP rendezvous. A fixed or pid-derived port
    collides with other test runs on the same machine; the OS never hands out a port that is in use."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory) -> Path:
    """4 train / 2 val 64-px images with 1–2 objects each: the smallest set a training run can use. Returns the
    folder (``data.yaml``, ``images/{train,val}``, ``annotations/``)."""
    return generate_shapes(tmp_path_factory.mktemp("data") / "shapes", n_train=4, n_val=2, size=64,
                           object_size=(16, 40), objects=(1, 2))
