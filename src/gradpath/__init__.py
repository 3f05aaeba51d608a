"""gradpath: the gradient path design strategies (PRN, CSP, ELAN) of Wang, Liao & Yeh (2022).

Public face: ``create_model``, ``list_models``, ``profile``, ``analyze``.
"""
from __future__ import annotations

from gradpath.analysis import analyze
from gradpath.errors import GradpathError
from gradpath.models.registry import list_models, register_model
from gradpath.pretrained import create_model
from gradpath.profiling import profile

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "register_model", "profile", "analyze", "GradpathError", "__version__"]
