"""``gradpath.create_model``: the registry's builder, plus ``weights=`` to start from a saved checkpoint.

Why a module of its own: building a network belongs to the models layer, but reading a checkpoint (``.pt`` with
``weights_only=True``, or an exported ``.safetensors``) belongs to the engine, which sits above it. The public
function joins the two here, and imports the engine only when weights are asked for, so ``import gradpath``
stays as light as before.
"""
from __future__ import annotations

import os
from typing import Any

from torch import nn

from gradpath.models import registry

__all__ = ["create_model"]


def create_model(name: str, weights: str | os.PathLike | None = None, **overrides: Any) -> nn.Module:
    """Build the registered model ``name``; ``overrides`` replace fields of its config (``width=0.25``).

    ``weights``: a gradpath checkpoint to load into it — a ``best.pt``/``last.pt`` of ``gradpath train``, the
    output of ``gradpath convert`` (e.g. YOLOv5 weights) or a ``.safetensors`` file of ``gradpath export``. The
    model is then built with the config stored in the checkpoint, updated by ``overrides``; a checkpoint of another
    model, or weights that do not fit the overridden config, is a one-line ``GradpathError``.
    """
    if weights is None:
        return registry.create_model(name, **overrides)
    from gradpath.engine.checkpoint import model_from_checkpoint  # lazily: the engine brings matplotlib (~1.6 s)

    model, _ = model_from_checkpoint(weights, expect_model=name, overrides=overrides)
    return model
