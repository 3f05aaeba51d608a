"""gradpath: the gradient path design strategies (PRN, CSP, ELAN) of Wang, Liao & Yeh (2022).

Public face: ``create_model``, ``list_models``, ``profile``, ``analyze``.
"""
from __future__ import annotations

from typing import Any

from gradpath.errors import GradpathError
from gradpath.models.registry import create_model, list_models, register_model
from gradpath.profiling import profile

__version__ = "0.1.0"


def analyze(model: Any, example_input: Any = None, **kwargs: Any) -> Any:
    """Gradient-path analysis of any ``nn.Module`` (see ``gradpath.analysis``)."""
    from gradpath.analysis import analyze as _analyze

    return _analyze(model, example_input, **kwargs)


__all__ = ["create_model", "list_models", "register_model", "profile", "analyze", "GradpathError", "__version__"]
