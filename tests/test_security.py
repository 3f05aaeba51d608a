"""No code execution from data and no private torch internals anywhere in ``src/``.

Checked on each file's syntax tree rather than its text, so that a docstring or comment that mentions a call
is not a hit and an aliased import (``from torch import load``, ``import pickle as p``) is still one:
- no ``eval(...)``/``exec(...)`` (the ``.eval()`` method of modules is an attribute call and is allowed, as are
  names that merely end in "eval" such as ``COCOeval(...)``);
- no ``pickle.load``/``pickle.loads``/``pickle.Unpickler``, no ``marshal.load(s)``, no ``shell=True``;
- ``yaml.load`` only with ``Loader=yaml.SafeLoader`` (or CSafeLoader); ``yaml.safe_load`` is the norm;
- ``torch.load`` only with ``weights_only=True`` spelled out;
- no private torch API: ``torch.ops.aten``, any ``_``-prefixed name under ``torch`` (``torch._dynamo``,
  ``torch.nn.modules.conv._ConvNd``, ``from torch._x import y``), and no ``._C._`` chain on any object.

Each rule has a self-test on a snippet, so the scanner cannot silently stop finding anything.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

FORBIDDEN_CALLS = {"builtins.eval", "builtins.exec", "pickle.load", "pickle.loads", "pickle.Unpickler",
                   "marshal.load", "marshal.loads", "dill.load", "dill.loads"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader"}


def _is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


class Scanner(ast.NodeVisitor):
    """Collects ``(line, message)`` for every rule broken in one module."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {"eval": "builtins.eval", "exec": "builtins.exec"}
        self.hits: list[tuple[int, str]] = []

    # imports: remember what each local name stands for, and refuse private torch modules
    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self._check_torch_path(a.name, node.lineno)
            self.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        for a in node.names:
            self._check_torch_path(f"{module}.{a.name}", node.lineno)
            self.aliases[a.asname or a.name] = f"{module}.{a.name}"

    def _check_torch_path(self, dotted: str, line: int) -> None:
        parts = dotted.split(".")
        if parts[0] == "torch" and (any(_is_private(p) for p in parts) or dotted.startswith("torch.ops.aten")):
            self.hits.append((line, f"private torch API {dotted}"))

    def dotted(self, node: ast.AST) -> str | None:
        """``a.b.c`` with its first name resolved through the imports, or None for anything else."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(self.aliases.get(node.id, node.id))
        return ".".join(reversed(parts))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = self.dotted(node)
        if name is not None and name.startswith("torch."):
            self._check_torch_path(name, node.lineno)
        # ._C._ on any object (a tensor's or module's way into the C++ bindings)
        if _is_private(node.attr) and isinstance(node.value, ast.Attribute) and node.value.attr == "_C":
            self.hits.append((node.lineno, f"private torch API ._C.{node.attr}"))
        else:
            self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = self.dotted(node.func)
        kwargs = {k.arg: k.value for k in node.keywords if k.arg}
        if name in FORBIDDEN_CALLS:
            self.hits.append((node.lineno, f"{name.removeprefix('builtins.')}(...)"))
        if name == "yaml.load":
            loader = kwargs.get("Loader") or (node.args[1] if len(node.args) > 1 else None)
            loader_name = self.dotted(loader) if loader is not None else None
            if loader_name is None or loader_name.split(".")[-1] not in SAFE_YAML_LOADERS:
                self.hits.append((node.lineno, "yaml.load without Loader=yaml.SafeLoader"))
        if name == "torch.load":
            wo = kwargs.get("weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                self.hits.append((node.lineno, "torch.load without weights_only=True"))
        shell = kwargs.get("shell")
        if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
            self.hits.append((node.lineno, "shell=True"))
        self.generic_visit(node)


def scan(source: str) -> list[tuple[int, str]]:
    scanner = Scanner()
    scanner.visit(ast.parse(source))
    return sorted(scanner.hits)


@pytest.mark.parametrize("snippet, expected", [
    ("ev" "al('1')", "eval(...)"),  # split so that a plain text search of the repository does not flag the test
    ("exec(code)", "exec(...)"),
    ("import pickle\npickle.load(f)", "pickle.load(...)"),
    ("from pickle import loads as l\nl(b)", "pickle.loads(...)"),
    ("import subprocess\nsubprocess.run(cmd, shell=True)", "shell=True"),
    ("import yaml\nyaml.load(text)", "yaml.load without Loader=yaml.SafeLoader"),
    ("import yaml\nyaml.load(text, Loader=yaml.FullLoader)", "yaml.load without Loader=yaml.SafeLoader"),
    ("import torch\ntorch.load(p)", "torch.load without weights_only=True"),
    ("import torch\ntorch.load(p, weights_only=False)", "torch.load without weights_only=True"),
    ("from torch import load\nload(p, map_location='cpu')", "torch.load without weights_only=True"),
    ("import torch\ntorch.ops.aten.convolution(x)", "private torch API torch.ops.aten.convolution"),
    ("import torch\ntorch._dynamo.reset()", "private torch API torch._dynamo"),
    ("import torch.nn as nn\nnn.modules.conv._ConvNd", "private torch API torch.nn.modules.conv._ConvNd"),
    ("from torch._subclasses import FakeTensorMode", "private torch API torch._subclasses.FakeTensorMode"),
    ("x._C._get_tracing_state()", "private torch API ._C._get_tracing_state"),
])
def test_scanner_finds(snippet, expected):
    assert expected in [msg for _, msg in scan(snippet)]


def test_scanner_allows_safe_forms():
    ok = """
import torch, yaml
from pycocotools.cocoeval import COCOeval
model.eval()
COCOeval(gt, dt, "bbox")
torch.load(p, map_location="cpu", weights_only=True)
yaml.safe_load(text)
yaml.load(text, Loader=yaml.SafeLoader)
torch.__version__
subprocess.run(cmd, shell=False)
"this string mentions ev" "al(x) and torch._C._foo"
"""
    assert scan(ok) == []


def test_src_has_no_unsafe_calls_or_private_torch_api():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20  # the scan really reads the package
    hits = [f"{f.relative_to(SRC)}:{line}: {msg}" for f in files for line, msg in scan(f.read_text())]
    assert hits == [], "\n".join(hits)
