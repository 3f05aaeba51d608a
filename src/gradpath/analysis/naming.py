"""How units are named, and which module classes count as convolutions and norms.

The naming rule (one rule, every backend and every ``--norm``): a unit is named by the qualified module name
(as in ``named_modules()``) of the module that owns its parameters, e.g. ``layer1.0.conv1``, except that a
*Conv-Norm-Act wrapper* is named as a whole. A wrapper is the unit's parent module when

- the unit is the parent's first child,
- the parent has no parameters of its own, and
- no other child has parameters, apart from the norm merged into the unit (``--norm merge``).

So torchvision's ``Conv2dNormActivation`` (``features.0`` of mobilenet_v2), ``Sequential(conv, bn)``
(``layer2.0.downsample`` of resnet) and gradpath's ``ConvBNAct`` are named as the wrapper, while resnet's
``layer1.0.conv1`` keeps its own name (its parent block holds other layers). With ``--norm count`` or
``ignore`` the norm is not merged, so the conv keeps its own name. Whatever the display name, every unit also
records ``module``: the qualified name of the module that owns its (first) parameter, so that a row maps back
to ``named_modules()``.
"""
from __future__ import annotations

from torch import nn

# public classes only (no private torch bases): the norms, and those of them that act per channel
PER_CHANNEL_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LazyBatchNorm1d,
                     nn.LazyBatchNorm2d, nn.LazyBatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d,
                     nn.InstanceNorm3d, nn.LazyInstanceNorm1d, nn.LazyInstanceNorm2d, nn.LazyInstanceNorm3d)
NORMS = PER_CHANNEL_NORMS + (nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def is_norm(mod: nn.Module) -> bool:
    return isinstance(mod, NORMS)


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
    """The display name of the unit whose parameters ``target`` (a qualified module name) owns: ``target`` or
    its parent wrapper's name, by the rule in the module docstring."""
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
