"""Names of units: qualified module names (``layer1.0.conv1``), with a Conv-BN(-act) wrapper named as a whole.

A unit is reported under its wrapper's name (``features.1`` for a ``ConvBNAct``) when the wrapper holds no
other parameterized layer than the unit and its merged norm (§2.2: Conv+BN+act is one unit).
"""
from __future__ import annotations

from torch import nn

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.LayerNorm, nn.GroupNorm,
          nn.LocalResponseNorm)


def is_norm(mod: nn.Module) -> bool:
    return isinstance(mod, _NORMS)


def param_owner_map(root: nn.Module) -> dict[str, str]:
    """Qualified parameter name → qualified name of the module that registers it."""
    out = {}
    for mname, mod in root.named_modules():
        for pname, _ in mod.named_parameters(recurse=False):
            out[f"{mname}.{pname}" if mname else pname] = mname
    return out


def _strip(name: str, prefix: str) -> str:
    return name[len(prefix):] if prefix and name.startswith(prefix) else name


def unit_display_name(root: nn.Module, target: str, prefix: str = "", merged_norm: str | None = None) -> str:
    """``target`` (a qualified module name) or its parent wrapper's name, see the module docstring."""
    if "." not in target:
        return _strip(target, prefix)
    parent_name, _ = target.rsplit(".", 1)
    if _strip(parent_name, prefix) == "" or parent_name + "." == prefix:
        return _strip(target, prefix)
    try:
        parent = root.get_submodule(parent_name)
    except AttributeError:
        return _strip(target, prefix)
    if any(True for _ in parent.named_parameters(recurse=False)):
        return _strip(target, prefix)
    allowed = {target.rsplit(".", 1)[1]}
    if merged_norm and merged_norm.rsplit(".", 1)[0] == parent_name:
        allowed.add(merged_norm.rsplit(".", 1)[1])
    for cname, child in parent.named_children():
        if cname not in allowed and any(True for _ in child.parameters()):
            return _strip(target, prefix)
    # only wrappers that look like conv(-norm)(-act): the unit is the first child
    first = next(iter(parent.named_children()))[0]
    if first != target.rsplit(".", 1)[1]:
        return _strip(target, prefix)
    return _strip(parent_name, prefix)
