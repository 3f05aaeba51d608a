"""The model options every model-building command shares: MODEL, ``--strategy``, ``--fusion``, ``--set KEY=VALUE``.

Why one module: ``profile``, ``analyze`` and ``train`` must accept the same options with the same meaning (the
README promises that every command takes them), so they are declared and turned into ``create_model``
overrides in exactly one place. Whether an override names a real config field, and has the field's type, is
decided by the model registry (``gradpath.models.registry``); this module only parses the command line.
"""
from __future__ import annotations

import argparse
from typing import Any

import yaml
from torch import nn

from gradpath.errors import GradpathError
from gradpath.models.registry import create_model

# Command-line options that are config fields of their own (shorthands for ``--set strategy=...``).
SHORTHAND_FIELDS = ("strategy", "fusion")


def parse_overrides(items: list[str] | None, option: str = "--set") -> dict[str, Any]:
    """``["key=value", ...]`` → ``{key: value}``. Values are YAML scalars or lists read with ``yaml.safe_load``
    (``3`` → int, ``0.5`` → float, ``true`` → bool, ``[2,1]`` → the tuple ``(2, 1)``, since configs are frozen
    dataclasses whose sequence fields are tuples). ``option`` names the flag in error messages (``--hyp`` too)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise GradpathError(f"{option} {item!r} must look like key=value (e.g. {option} num_classes=3)")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or "not valid YAML"
            raise GradpathError(f"{option} {item!r}: the value {text!r} cannot be read ({problem})") from None
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


def add_override_args(p: argparse.ArgumentParser) -> None:
    """``--strategy``, ``--fusion`` and ``--set``, for commands that name their model some other way
    (``train --model M``)."""
    p.add_argument("--strategy", help="gradient-path strategy where the model supports it (e.g. prn, csp, elan)")
    p.add_argument("--fusion", help="CSP fusion variant: fusion, first, last, none")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override any config field, e.g. --set num_classes=10 or --set elan_stack=[2,1] "
                   "(repeatable)")


def add_model_args(p: argparse.ArgumentParser, optional: bool = False) -> None:
    """The positional MODEL plus the override options (``optional``: MODEL may be omitted, for commands that can
    take the network from elsewhere, e.g. ``analyze --model FILE.py:Class``)."""
    p.add_argument("model", nargs="?" if optional else None, help="registered model name (see `gradpath models`)")
    add_override_args(p)


def model_overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``create_model`` keyword overrides from ``--set`` plus the ``--strategy``/``--fusion`` shorthands.

    A shorthand given together with ``--set`` of the same field must agree with it; otherwise one of the two
    would be dropped without a word."""
    overrides = parse_overrides(getattr(args, "overrides", None))
    for key in SHORTHAND_FIELDS:
        value = getattr(args, key, None)
        if value is None:
            continue
        if key in overrides and overrides[key] != value:
            raise GradpathError(f"--{key} {value} contradicts --set {key}={overrides[key]}; give only one")
        overrides[key] = value
    return overrides


def model_from_args(args: argparse.Namespace) -> nn.Module:
    """The registered model ``args.model`` built with the overrides of ``model_overrides_from_args``."""
    return create_model(args.model, **model_overrides_from_args(args))
