"""The import graph follows the layers of docs/ARCHITECTURE.md: a module imports only from its layer or below.

Read from the source (ast), so it also sees imports inside functions. A new top-level module or package must be
given a layer here and in docs/ARCHITECTURE.md.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gradpath"

# Higher imports lower, never the reverse.
LAYERS: dict[str, int] = {
    "errors": 0, "formatting": 0, "checks": 0, "hyp": 0, "threads": 0, "recipes": 0, "job_pool": 0,
    "nn": 1,
    "models": 2,
    "analysis": 3, "profiling": 3, "data": 3, "experiments": 3, "deploy": 3,
    "engine": 4,
    "tasks": 5, "pretrained": 5,
    "runner": 6, "reproduce": 6,
    "commands": 7, "cli": 7, "__main__": 7, "__init__": 7,
}


def _top(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == "gradpath", module
    return parts[1] if len(parts) > 1 else "__init__"


def _internal_imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, module) of every ``gradpath`` import in a file, inside functions too; relative ones resolved."""
    tree = ast.parse(source if source is not None else path.read_text(), filename=str(path))
    parts = ("gradpath", *path.relative_to(SRC).with_suffix("").parts)
    package = parts[:-1] if path.name != "__init__.py" else parts[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "gradpath"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod == "gradpath":  # `from gradpath import runner` names a module
                out += [(node.lineno, f"gradpath.{a.name}") for a in node.names]
            elif mod.split(".")[0] == "gradpath":
                out.append((node.lineno, mod))
    return out


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def test_every_top_level_module_has_a_layer():
    tops = {p.relative_to(SRC).parts[0].removesuffix(".py") for p in _modules()}
    assert tops <= set(LAYERS), f"give these a layer: {sorted(tops - set(LAYERS))}"


def test_no_module_imports_a_layer_above_its_own():
    bad = []
    for path in _modules():
        rel = path.relative_to(SRC)
        own = rel.parts[0].removesuffix(".py")
        for line, mod in _internal_imports(path):
            other = _top(mod)
            if other in LAYERS and LAYERS[other] > LAYERS[own]:
                bad.append(f"{rel}:{line} ({own}, layer {LAYERS[own]}) imports {mod} (layer {LAYERS[other]})")
    assert not bad, "imports that run upward:\n" + "\n".join(bad)


def test_engine_imports_no_task_and_no_command():
    bad = [f"{p.relative_to(SRC)}:{line} imports {mod}" for p in (SRC / "engine").rglob("*.py")
           for line, mod in _internal_imports(p) if _top(mod) in ("tasks", "commands", "cli", "runner")]
    assert not bad, bad


def test_the_checker_sees_an_upward_import():
    """Guards against a checker that finds nothing: an import inside a function, upward, is seen."""
    src = "import torch\n\ndef f():\n    from gradpath.commands import train\n    from ..errors import X\n"
    found = _internal_imports(SRC / "nn" / "conv.py", src)
    assert found == [(4, "gradpath.commands"), (5, "gradpath.errors")]
    assert LAYERS[_top(found[0][1])] > LAYERS["nn"]


#: libraries that may be imported inside a function: optional extras, or heavy ones only one path needs
LAZY_OK = ("onnx", "onnxruntime", "pycocotools", "matplotlib")
#: single modules of a required library that only one path needs and that are slow to import
#: (torch's flop counter imports triton where it is installed: ``import gradpath`` should not pay for it)
#: gradpath.engine.checkpoint: only ``create_model(weights=...)`` reads checkpoints, and the engine package brings
#: matplotlib and PIL with it (about 1.6 s measured), which ``import gradpath`` does not otherwise load
LAZY_OK_MODULES = ("torch.utils.flop_counter", "gradpath.engine.checkpoint")


def test_imports_are_at_module_top():
    """Only heavy optional libraries are imported lazily (each with a comment saying why at its site)."""
    bad = []
    for path in _modules():
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    mods = [node.module or ""]
                else:
                    continue
                bad += [f"{path.relative_to(SRC)}:{node.lineno} {m}" for m in mods
                        if m.split(".")[0] not in LAZY_OK and m not in LAZY_OK_MODULES]
    assert not bad, "imports inside functions:\n" + "\n".join(bad)
